/* What the threads of a multithreaded stress test share: the first failure
 * any of them reports, and how many writers are still at work. Worker
 * threads cannot fail a cmocka test; they report here and stop, readers
 * and syncers go on while vt_crew_running, and the main thread fails with
 * the message once it has joined them all. */
#ifndef VT_CREW_H
#define VT_CREW_H

#include <pthread.h>

typedef struct vt_crew {
    pthread_mutex_t mu; /* guards the fields below, and may guard the test's own */
    unsigned writers_left;
    char err[256]; /* the first failure; empty while there is none */
} vt_crew;

void vt_crew_init(vt_crew *c, unsigned writers);
void vt_crew_destroy(vt_crew *c);
/* Keep the message unless an earlier failure was reported. */
void vt_crew_fail(vt_crew *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vt_crew_failed(vt_crew *c);
/* A writer is done (its last act). */
void vt_crew_writer_done(vt_crew *c);
/* Writers are still at work and nobody failed. */
int vt_crew_running(vt_crew *c);

#endif
