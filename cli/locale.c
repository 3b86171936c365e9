/* Names in a volume are UTF-8 (FAT long names are UTF-16 and the library
 * converts). Tools that hand names to libarchive set LC_CTYPE to UTF-8 so
 * its conversions (pax headers are UTF-8) do not fail in the "C" locale. */
#include <locale.h>

#include "cli.h"

void cli_locale_utf8(void)
{
    if (!setlocale(LC_CTYPE, "C.UTF-8"))
        (void)setlocale(LC_CTYPE, "C.utf8"); /* else stay in "C": names pass as bytes */
}
