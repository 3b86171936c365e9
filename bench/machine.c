/* The machine a run was measured on, for the JSON and the report. */
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

double bench_loadavg(void)
{
    double l[1];
    return getloadavg(l, 1) == 1 ? l[0] : -1;
}

static void cpuinfo(bench_machine *m)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[4096];
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        v[strcspn(v, "\n")] = 0;
        if (!m->cpu[0] && strncmp(line, "model name", 10) == 0)
            snprintf(m->cpu, sizeof m->cpu, "%s", v);
        if (strncmp(line, "flags", 5) == 0) {
            /* " aes " as a whole word among the flags */
            char *p = v;
            while ((p = strstr(p, "aes")) != NULL) {
                if ((p == v || p[-1] == ' ') && (p[3] == ' ' || p[3] == 0)) {
                    m->aes_ni = 1;
                    break;
                }
                p += 3;
            }
        }
    }
    (void)fclose(f); /* read-only: nothing to lose */
}

void bench_machine_get(bench_machine *m)
{
    memset(m, 0, sizeof *m);
    cpuinfo(m);
    if (!m->cpu[0])
        snprintf(m->cpu, sizeof m->cpu, "unknown");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    m->cores = n > 0 ? (int)n : 0;
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release, u.machine);
    else
        snprintf(m->kernel, sizeof m->kernel, "unknown");
    time_t t = time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        (void)strftime(m->date, sizeof m->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    m->load_start = bench_loadavg();
}
