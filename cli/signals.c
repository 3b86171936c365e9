/* Catching the signals that end a long copy, for tools that clean up
 * (temporaries, partial files) instead of dying mid-write. */
#include <signal.h>
#include <string.h>

#include "cli.h"

int cli_signals_catch(void (*on_signal)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    if (sigemptyset(&sa.sa_mask) != 0)
        return -1;
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return -1;
    return 0;
}
