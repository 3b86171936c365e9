/* The host's side of the channel: answer the trusted side's requests
 * (wire.h) from the image file until it hangs up, logging every byte
 * received, and let the attack hooks (attack.h) tamper with the answers. */
#ifndef SHIELD_SERVE_H
#define SHIELD_SERVE_H

#include <stdint.h>

#include "attack.h"

typedef struct host_srv {
    int sock;
    int img_fd;
    int log_fd; /* -1: no log */
    uint64_t requests;
    atk attack;
} host_srv;

/* Serve until the peer closes the socket (0) or breaks the protocol or
 * the log cannot be written (-1, with a message on stderr). */
int host_serve(host_srv *h);

#endif
