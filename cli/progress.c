/* A one-line progress display on a terminal (bytes, items, rate, ETA);
 * nothing at all in a pipe or with -q. */
#include <stdio.h>
#include <unistd.h>

#include "cli.h"

void cli_progress_start(cli_progress *p, const char *what, uint64_t total_bytes,
                        uint64_t total_items, int quiet)
{
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->what = what;
    p->total_bytes = total_bytes;
    p->total_items = total_items;
    p->bytes = p->items = 0;
    p->start = cli_now();
    p->last = 0;
}

static void draw(cli_progress *p, double now)
{
    char done[16], total[16];
    double secs = now - p->start;
    double rate = secs > 0 ? (double)p->bytes / secs : 0;
    char rbuf[16];
    cli_size_format((uint64_t)rate, rbuf, sizeof rbuf);
    cli_size_format(p->bytes, done, sizeof done);
    fprintf(stderr, "\r%s: %s", p->what, done);
    if (p->total_bytes) {
        cli_size_format(p->total_bytes, total, sizeof total);
        fprintf(stderr, " / %s (%3.0f%%)", total,
                100.0 * (double)p->bytes / (double)p->total_bytes);
    }
    if (p->total_items)
        fprintf(stderr, ", %llu/%llu files", (unsigned long long)p->items,
                (unsigned long long)p->total_items);
    else if (p->items)
        fprintf(stderr, ", %llu files", (unsigned long long)p->items);
    fprintf(stderr, ", %s/s", rbuf);
    if (p->total_bytes && rate > 0 && p->bytes < p->total_bytes) {
        double eta = (double)(p->total_bytes - p->bytes) / rate;
        fprintf(stderr, ", ETA %d:%02d", (int)(eta / 60), (int)eta % 60);
    }
    fprintf(stderr, "\033[K");
    fflush(stderr);
}

void cli_progress_add(cli_progress *p, uint64_t bytes, uint64_t items)
{
    p->bytes += bytes;
    p->items += items;
    if (!p->enabled)
        return;
    double now = cli_now();
    if (now - p->last < 0.125)
        return;
    p->last = now;
    draw(p, now);
}

void cli_progress_end(cli_progress *p)
{
    if (!p->enabled)
        return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}
