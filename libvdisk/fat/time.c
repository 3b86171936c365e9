/* FAT timestamps <-> nanoseconds since the Unix epoch. FAT stores local
 * time without a zone; we store UTC, like mtools' and Linux's "tz=UTC".
 * The clock is untrusted: anything outside 1980-01-01 .. 2107-12-31 is
 * clamped, and a failing clock reads as 1980-01-01. */
#include "fat/fat_internal.h"

#define NS_PER_S 1000000000LL
/* 1980-01-01T00:00:00Z and 2107-12-31T23:59:58Z in seconds. */
#define FAT_EPOCH_S 315532800LL
#define FAT_LAST_S 4354819198LL

int64_t fat_clock(vd_clock_fn now, void *ctx)
{
    int64_t ns = FAT_EPOCH_S * NS_PER_S;
    if (now) {
        int64_t t;
        if (now(ctx, &t) == 0)
            ns = t;
    }
    if (ns < FAT_EPOCH_S * NS_PER_S)
        ns = FAT_EPOCH_S * NS_PER_S;
    if (ns / NS_PER_S > FAT_LAST_S)
        ns = FAT_LAST_S * NS_PER_S;
    return ns;
}

int64_t fat_now(const vd_fs *fs)
{
    return fat_clock(fs->now, fs->now_ctx);
}

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void fat_time_encode(int64_t ns, uint16_t *date, uint16_t *time, uint8_t *tenth)
{
    if (ns < FAT_EPOCH_S * NS_PER_S)
        ns = FAT_EPOCH_S * NS_PER_S;
    if (ns / NS_PER_S > FAT_LAST_S)
        ns = FAT_LAST_S * NS_PER_S;
    int64_t s = ns / NS_PER_S;
    int64_t days = s / 86400, sod = s % 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    *date = (uint16_t)(((y - 1980) << 9) | (m << 5) | d);
    unsigned hh = (unsigned)(sod / 3600), mm = (unsigned)(sod / 60 % 60),
             ss = (unsigned)(sod % 60);
    *time = (uint16_t)((hh << 11) | (mm << 5) | (ss / 2));
    if (tenth)
        *tenth = (uint8_t)((ss % 2) * 100 + (ns % NS_PER_S) / 10000000);
}

int64_t fat_time_decode(uint16_t date, uint16_t time, uint8_t tenth)
{
    unsigned y = 1980 + (date >> 9), m = (date >> 5) & 15, d = date & 31;
    /* Foreign volumes may hold nonsense; map it into range, never fail. */
    if (m < 1)
        m = 1;
    if (m > 12)
        m = 12;
    if (d < 1)
        d = 1;
    unsigned hh = time >> 11, mm = (time >> 5) & 63, ss = (time & 31) * 2;
    if (hh > 23)
        hh = 23;
    if (mm > 59)
        mm = 59;
    if (ss > 59)
        ss = 58;
    if (tenth > 199)
        tenth = 0;
    int64_t s = days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss;
    return s * NS_PER_S + (int64_t)tenth * 10000000LL;
}
