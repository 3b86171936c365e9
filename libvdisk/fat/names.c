/* File names: UTF-8 in the API, UTF-16 in long-name entries, an 8.3 alias
 * beside every long name (Microsoft FAT spec §7, "Basis-Name Generation"
 * and "Numeric-Tail Generation"), case-insensitive matching that keeps the
 * case given. */
#include <string.h>

#include "fat/fat_format.h"
#include "fat/fat_internal.h"

vd_err fat_utf8_to_utf16(const char *s, size_t len, uint16_t *out, size_t *nout)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t c = p[i], need, min;
        if (c < 0x80) {
            need = 0;
            min = 0;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1;
            min = 0x80;
            c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2;
            min = 0x800;
            c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3;
            min = 0x10000;
            c &= 0x07;
        } else {
            return VD_ERR_NAME;
        }
        if (len - i - 1 < need)
            return VD_ERR_NAME;
        for (uint32_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return VD_ERR_NAME;
            c = (c << 6) | (p[i + k] & 0x3F);
        }
        /* Overlong forms and encoded surrogates are not UTF-8. */
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return VD_ERR_NAME;
        i += need + 1;
        if (c >= 0x10000) {
            if (n + 2 > FAT_NAME_MAX)
                return VD_ERR_NAME;
            c -= 0x10000;
            out[n++] = (uint16_t)(0xD800 | (c >> 10));
            out[n++] = (uint16_t)(0xDC00 | (c & 0x3FF));
        } else {
            if (n + 1 > FAT_NAME_MAX)
                return VD_ERR_NAME;
            out[n++] = (uint16_t)c;
        }
    }
    *nout = n;
    return VD_OK;
}

vd_err fat_utf16_to_utf8(const uint16_t *u, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = u[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n && u[i + 1] >= 0xDC00 &&
            u[i + 1] <= 0xDFFF) {
            c = 0x10000 + (((c & 0x3FF) << 10) | (u[i + 1] & 0x3FF));
            i++;
        } else if (c >= 0xD800 && c <= 0xDFFF) {
            c = 0xFFFD; /* unpaired surrogate from a foreign volume */
        }
        uint8_t b[4];
        size_t k;
        if (c < 0x80) {
            b[0] = (uint8_t)c;
            k = 1;
        } else if (c < 0x800) {
            b[0] = (uint8_t)(0xC0 | (c >> 6));
            b[1] = (uint8_t)(0x80 | (c & 0x3F));
            k = 2;
        } else if (c < 0x10000) {
            b[0] = (uint8_t)(0xE0 | (c >> 12));
            b[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            b[2] = (uint8_t)(0x80 | (c & 0x3F));
            k = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | (c >> 18));
            b[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
            b[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            b[3] = (uint8_t)(0x80 | (c & 0x3F));
            k = 4;
        }
        if (o + k + 1 > cap)
            return VD_ERR_NAME;
        memcpy(out + o, b, k);
        o += k;
    }
    if (o + 1 > cap)
        return VD_ERR_NAME;
    out[o] = 0;
    return VD_OK;
}

static int lfn_illegal(uint16_t c)
{
    return c < 0x20 || c == '"' || c == '*' || c == '/' || c == ':' || c == '<' ||
           c == '>' || c == '?' || c == '\\' || c == '|' || c == 0x7F;
}

vd_err fat_name_check(uint16_t *u, size_t *n)
{
    size_t len = *n;
    /* Windows and Linux drop trailing dots: "a." names "a". */
    while (len > 0 && u[len - 1] == '.')
        len--;
    if (len == 0)
        return VD_ERR_NAME; /* "", ".", ".." or only dots */
    if (len > FAT_NAME_MAX)
        return VD_ERR_NAME;
    for (size_t i = 0; i < len; i++)
        if (lfn_illegal(u[i]))
            return VD_ERR_NAME;
    /* Names made only of spaces cannot be told from padding. */
    size_t sp = 0;
    while (sp < len && u[sp] == ' ')
        sp++;
    if (sp == len)
        return VD_ERR_NAME;
    *n = len;
    return VD_OK;
}

/* Simple upper-casing (no locale): ASCII, Latin-1, Latin Extended-A pairs,
 * Greek and Cyrillic. Enough for matching names that differ only in case;
 * characters outside these ranges compare exactly. */
uint16_t fat_upcase(uint16_t c)
{
    if (c >= 'a' && c <= 'z')
        return (uint16_t)(c - 32);
    if (c < 0xE0)
        return c;
    if (c <= 0xFE)
        return c == 0xF7 ? c : (uint16_t)(c - 32);
    if (c == 0xFF)
        return 0x178;
    if (c >= 0x100 && c <= 0x17F) {
        if (c >= 0x139 && c <= 0x148) /* odd lower-case in this stretch */
            return (c & 1) ? c : (uint16_t)(c - 1);
        if (c >= 0x179 && c <= 0x17E)
            return (c & 1) ? c : (uint16_t)(c - 1);
        if (c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17F)
            return c;
        return (c & 1) ? (uint16_t)(c - 1) : c;
    }
    if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2)
        return (uint16_t)(c - 32);
    if (c >= 0x430 && c <= 0x44F)
        return (uint16_t)(c - 32);
    if (c >= 0x450 && c <= 0x45F)
        return (uint16_t)(c - 80);
    return c;
}

int fat_name_equal(const uint16_t *a, size_t na, const uint16_t *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (fat_upcase(a[i]) != fat_upcase(b[i]))
            return 0;
    return 1;
}

uint8_t fat_lfn_checksum(const uint8_t name[11])
{
    uint8_t sum = 0;
    for (int i = 0; i < 11; i++)
        sum = (uint8_t)(((sum & 1) << 7) + (sum >> 1) + name[i]);
    return sum;
}

/* Characters allowed in a short name besides A-Z and 0-9. */
static int sfn_char_ok(uint16_t c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c == '$' || c == '%' || c == '\'' || c == '-' || c == '_' || c == '@' ||
           c == '~' || c == '`' || c == '!' || c == '(' || c == ')' || c == '{' ||
           c == '}' || c == '^' || c == '#' || c == '&';
}

int fat_name_fits_83(const uint16_t *u, size_t n, uint8_t sfn[11], uint8_t *ntres)
{
    size_t dot = n;
    for (size_t i = 0; i < n; i++)
        if (u[i] == '.') {
            if (dot != n)
                return 0; /* two dots */
            dot = i;
        }
    size_t blen = dot, elen = dot == n ? 0 : n - dot - 1;
    if (blen == 0 || blen > 8 || elen > 3 || (dot != n && elen == 0))
        return 0;
    memset(sfn, ' ', 11);
    uint8_t res = 0;
    for (int part = 0; part < 2; part++) {
        size_t start = part ? dot + 1 : 0, len = part ? elen : blen;
        int upper = 0, lower = 0;
        for (size_t i = 0; i < len; i++) {
            uint16_t c = u[start + i];
            if (c >= 'a' && c <= 'z') {
                lower = 1;
                c = (uint16_t)(c - 32);
            } else if (c >= 'A' && c <= 'Z') {
                upper = 1;
            }
            if (!sfn_char_ok(c))
                return 0;
            sfn[(part ? 8 : 0) + i] = (uint8_t)c;
        }
        if (upper && lower)
            return 0; /* mixed case needs a long name to keep it */
        if (lower)
            res |= part ? NTRES_LOWER_EXT : NTRES_LOWER_BASE;
    }
    if (sfn[0] == DIR_FREE_BYTE)
        return 0;
    *ntres = res;
    return 1;
}

void fat_name_basis(const uint16_t *u, size_t n, uint8_t sfn[11], int *lossy)
{
    memset(sfn, ' ', 11);
    *lossy = 0;
    /* The extension follows the last dot (not a leading one). */
    size_t lead = 0;
    while (lead < n && (u[lead] == '.' || u[lead] == ' '))
        lead++;
    if (lead)
        *lossy = 1;
    size_t dot = n;
    for (size_t i = n; i > lead; i--)
        if (u[i - 1] == '.') {
            dot = i - 1;
            break;
        }
    size_t bl = 0;
    for (size_t i = lead; i < dot; i++) {
        uint16_t c = u[i];
        if (c == ' ' || c == '.') {
            *lossy = 1; /* embedded spaces and dots are dropped */
            continue;
        }
        c = fat_upcase(c);
        if (!sfn_char_ok(c)) {
            c = '_';
            *lossy = 1;
        }
        if (bl == 8) {
            *lossy = 1;
            break;
        }
        sfn[bl++] = (uint8_t)c;
    }
    if (bl == 0) {
        sfn[0] = '_';
        *lossy = 1;
    }
    size_t el = 0;
    for (size_t i = dot + 1; dot < n && i < n; i++) {
        uint16_t c = u[i];
        if (c == ' ') {
            *lossy = 1;
            continue;
        }
        c = fat_upcase(c);
        if (!sfn_char_ok(c)) {
            c = '_';
            *lossy = 1;
        }
        if (el == 3) {
            *lossy = 1;
            break;
        }
        sfn[8 + el++] = (uint8_t)c;
    }
    /* Upper-casing alone also counts: the long name keeps the case. */
}

void fat_name_tail(const uint8_t basis[11], uint32_t tail, uint8_t out[11])
{
    char digits[12];
    int nd = 0;
    uint32_t t = tail;
    do {
        digits[nd++] = (char)('0' + t % 10);
        t /= 10;
    } while (t && nd < 10);
    memcpy(out, basis, 11);
    size_t bl = 0;
    while (bl < 8 && basis[bl] != ' ')
        bl++;
    size_t keep = 8 - (size_t)(nd + 1);
    if (keep > bl)
        keep = bl;
    out[keep] = '~';
    for (int i = 0; i < nd; i++)
        out[keep + 1 + (size_t)i] = (uint8_t)digits[nd - 1 - i];
    for (size_t i = keep + 1 + (size_t)nd; i < 8; i++)
        out[i] = ' ';
}

size_t fat_sfn_to_utf16(const uint8_t sfn[11], uint8_t ntres, uint16_t *out)
{
    size_t n = 0;
    for (int part = 0; part < 2; part++) {
        int start = part ? 8 : 0, len = part ? 3 : 8;
        while (len > 0 && sfn[start + len - 1] == ' ')
            len--;
        if (part && len == 0)
            break;
        if (part)
            out[n++] = '.';
        int lower = ntres & (part ? NTRES_LOWER_EXT : NTRES_LOWER_BASE);
        for (int i = 0; i < len; i++) {
            uint16_t c = sfn[start + i];
            if (i == 0 && !part && c == DIR_KANJI_E5)
                c = 0xE5;
            if (lower && c >= 'A' && c <= 'Z')
                c = (uint16_t)(c + 32);
            /* Bytes >= 0x80 are OEM code page; read as Latin-1, which
             * keeps them distinct and printable. */
            out[n++] = c;
        }
    }
    return n;
}

vd_err fat_label_make(const char *in, uint8_t out[11])
{
    memset(out, ' ', 11);
    if (!in)
        in = "NO NAME";
    size_t len = strlen(in);
    if (len == 0 || len > 11)
        return VD_ERR_NAME;
    for (size_t i = 0; i < len; i++) {
        uint16_t c = (uint8_t)in[i];
        if (c >= 'a' && c <= 'z')
            c = (uint16_t)(c - 32);
        if (!sfn_char_ok(c) && c != ' ')
            return VD_ERR_NAME;
        out[i] = (uint8_t)c;
    }
    if (out[0] == ' ')
        return VD_ERR_NAME;
    return VD_OK;
}
