/* See crew.h. */
#include "crew.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

void vt_crew_init(vt_crew *c, unsigned writers)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(pthread_mutex_init(&c->mu, NULL), 0);
    c->writers_left = writers;
}

void vt_crew_destroy(vt_crew *c)
{
    pthread_mutex_destroy(&c->mu);
}

void vt_crew_fail(vt_crew *c, const char *fmt, ...)
{
    pthread_mutex_lock(&c->mu);
    if (!c->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof c->err, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&c->mu);
}

int vt_crew_failed(vt_crew *c)
{
    pthread_mutex_lock(&c->mu);
    int f = c->err[0] != 0;
    pthread_mutex_unlock(&c->mu);
    return f;
}

void vt_crew_writer_done(vt_crew *c)
{
    pthread_mutex_lock(&c->mu);
    c->writers_left--;
    pthread_mutex_unlock(&c->mu);
}

int vt_crew_running(vt_crew *c)
{
    pthread_mutex_lock(&c->mu);
    int r = c->writers_left > 0 && !c->err[0];
    pthread_mutex_unlock(&c->mu);
    return r;
}
