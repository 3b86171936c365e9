/* fuzz_names: the name code of the FAT layer (fat/names.c) on arbitrary
 * bytes: UTF-8 <-> UTF-16, long-name checks, 8.3 fitting, basis names and
 * numeric tails, short names for display, LFN checksums, labels. Names
 * come from the API (UTF-8) and from disk (UTF-16 and 8.3 bytes), so both
 * directions see hostile input.
 *
 * Input: any bytes; the first byte picks a tail number and NTRes bits. */
#include <string.h>

#include "fat/fat_internal.h"
#include "fz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_rng_install();
    return 0;
}

/* A generated short name holds only what the FAT spec allows in one:
 * upper case, no control or reserved characters, no leading space. */
static int sfn_valid(const uint8_t sfn[11])
{
    static const char bad[] = "\"*+,./:;<=>?[\\]|";
    if (sfn[0] == ' ')
        return 0;
    for (unsigned i = 0; i < 11; i++) {
        if (sfn[i] < 0x20 || (sfn[i] >= 'a' && sfn[i] <= 'z') || strchr(bad, sfn[i]))
            return 0;
    }
    return 1;
}

static void from_utf8(const uint8_t *p, size_t n, uint8_t knob)
{
    uint16_t u[FAT_NAME_MAX + 1];
    size_t nu = 0;
    char back[FAT_NAME_MAX * 3 + 1];
    if (fat_utf8_to_utf16((const char *)p, n, u, &nu) != VD_OK)
        return;
    FZ_CHECK(nu <= FAT_NAME_MAX);
    /* Decoding accepted it, so it was well-formed UTF-8 (no overlong forms,
     * no surrogates): encoding it again gives the same bytes. */
    FZ_CHECK(fat_utf16_to_utf8(u, nu, back, sizeof back) == VD_OK);
    if (!memchr(p, 0, n))
        FZ_CHECK(strlen(back) == n && memcmp(back, p, n) == 0);
    FZ_CHECK(fat_name_equal(u, nu, u, nu));

    size_t nc = nu;
    if (fat_name_check(u, &nc) != VD_OK)
        return;
    FZ_CHECK(nc >= 1 && nc <= nu);
    uint8_t sfn[11], basis[11], tailed[11], ntres = 0;
    if (fat_name_fits_83(u, nc, sfn, &ntres)) {
        uint16_t disp[13];
        size_t nd = fat_sfn_to_utf16(sfn, ntres, disp);
        FZ_CHECK(nd <= 12);
        /* A name stored as a bare 8.3 entry reads back as itself. */
        FZ_CHECK(fat_name_equal(disp, nd, u, nc));
    }
    int lossy = 0;
    fat_name_basis(u, nc, basis, &lossy);
    FZ_CHECK(sfn_valid(basis));
    fat_name_tail(basis, 1u + knob * 4099u, tailed);
    FZ_CHECK(sfn_valid(tailed));
    (void)fat_lfn_checksum(tailed);
}

static void from_utf16(const uint8_t *p, size_t n)
{
    uint16_t u[FAT_NAME_MAX + 1];
    size_t nu = n / 2 > FAT_NAME_MAX ? FAT_NAME_MAX : n / 2;
    char out[FAT_NAME_MAX * 3 + 1], small[7];
    for (size_t i = 0; i < nu; i++)
        u[i] = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    if (fat_utf16_to_utf8(u, nu, out, sizeof out) == VD_OK)
        FZ_CHECK(strlen(out) < sizeof out);
    memset(small, 0x55, sizeof small);
    if (fat_utf16_to_utf8(u, nu, small, sizeof small) == VD_OK)
        FZ_CHECK(strnlen(small, sizeof small) < sizeof small);
    for (size_t i = 0; i < nu; i++)
        (void)fat_upcase(u[i]);
    size_t nc = nu;
    (void)fat_name_check(u, &nc);
    FZ_CHECK(nc <= nu);
}

static void short_names(const uint8_t *p, size_t n, uint8_t ntres)
{
    uint8_t sfn[11];
    uint16_t disp[13];
    memset(sfn, ' ', sizeof sfn);
    memcpy(sfn, p, n < 11 ? n : 11);
    FZ_CHECK(fat_sfn_to_utf16(sfn, ntres, disp) <= 12);
    (void)fat_lfn_checksum(sfn);

    char label[32];
    uint8_t out[11];
    size_t ln = n < sizeof label - 1 ? n : sizeof label - 1;
    memcpy(label, p, ln);
    label[ln] = '\0';
    (void)fat_label_make(label, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t knob = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (n > 4 * FAT_NAME_MAX)
        n = 4 * FAT_NAME_MAX;
    from_utf8(p, n, knob);
    from_utf16(p, n);
    short_names(p, n, knob & 0x18);
    return 0;
}
