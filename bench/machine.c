/* The machine a run was measured on, for the JSON and the report, and
 * which programs it has (bench_which). */
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

int bench_which(const char *name, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s", path ? path : "/usr/bin:/bin");
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        int n = snprintf(out, cap, "%s/%s", *d ? d : ".", name);
        if (n > 0 && (size_t)n < cap && access(out, X_OK) == 0)
            return 1;
    }
    out[0] = 0;
    return 0;
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
