/* The write gate: WRITEs that extend a file run in offset order.
 *
 * With the writeback cache the kernel sends a file's dirty pages as up to
 * max_background WRITE requests at once, in file order; the worker threads
 * serving them then race for the volume's lock, which is not FIFO. A WRITE
 * that wins the race past the file's end makes the file system zero-fill
 * the gap (FAT has no holes), and the WRITE for the gap then lands on the
 * same blocks: a 512 MiB sequential write (dd, fio) zero-filled 219 MiB in
 * 74 gaps, every zero block dirtied in the image's cache, some sealed and
 * written by an implicit commit before being overwritten.
 *
 * So a WRITE at or past the end this mount's writes have taken the file to
 * (wend) waits while another such WRITE below it is in progress. Writes
 * inside the file never wait nor make others wait, and a WRITE waits only
 * for ones at lower offsets, so the lowest always goes on (no deadlock,
 * and a file being appended to cannot starve an overwrite). Only the
 * order changes: writes to one volume take its lock one at a time anyway.
 * wend is a hint: when it is off (the file was changed by a path without
 * a handle), writes are ordered that need not be, or a gap is zero-filled
 * as before; what lands in the file is the same either way. */
#include "vhdmount.h"

/* With t->mu held. */
static int must_wait(const vmnt_node *n, int slot, uint64_t off)
{
    for (int k = 0; k < VMNT_WGATE_MAX; k++)
        if (k != slot && (n->wmask >> k & 1u) && n->woff[k] < off)
            return 1;
    return 0;
}

int vmnt_wgate_enter(vmnt_nodes *t, vmnt_node *n, uint64_t off)
{
    if (pthread_mutex_lock(&t->mu) != 0)
        return -1;
    int slot = -1;
    if (off >= n->wend)
        for (int k = 0; k < VMNT_WGATE_MAX && slot < 0; k++)
            if (!(n->wmask >> k & 1u))
                slot = k;
    if (slot >= 0) {
        n->woff[slot] = off;
        n->wmask |= 1u << slot;
        n->wwaiting++;
        while (must_wait(n, slot, off))
            if (pthread_cond_wait(&t->wcv, &t->mu) != 0)
                break; /* cannot wait: go on unordered, as without the gate */
        n->wwaiting--;
    }
    (void)pthread_mutex_unlock(&t->mu);
    return slot;
}

void vmnt_wgate_leave(vmnt_nodes *t, vmnt_node *n, int slot, uint64_t end)
{
    if (pthread_mutex_lock(&t->mu) != 0)
        return;
    if (slot >= 0 && slot < VMNT_WGATE_MAX)
        n->wmask &= ~(1u << slot);
    if (end > n->wend)
        n->wend = end;
    if (slot >= 0)
        (void)pthread_cond_broadcast(&t->wcv);
    (void)pthread_mutex_unlock(&t->mu);
}

void vmnt_wgate_resized(vmnt_nodes *t, vmnt_node *n, uint64_t size)
{
    if (pthread_mutex_lock(&t->mu) != 0)
        return;
    n->wend = size;
    /* A waiting WRITE now inside the file stays ordered: harmless. */
    (void)pthread_mutex_unlock(&t->mu);
}

int vmnt_wgate_would_wait(vmnt_nodes *t, vmnt_node *n, uint64_t off)
{
    if (pthread_mutex_lock(&t->mu) != 0)
        return 0;
    int w = off >= n->wend && must_wait(n, -1, off);
    (void)pthread_mutex_unlock(&t->mu);
    return w;
}

unsigned vmnt_wgate_waiting(vmnt_nodes *t, vmnt_node *n)
{
    if (pthread_mutex_lock(&t->mu) != 0)
        return 0;
    unsigned w = n->wwaiting;
    (void)pthread_mutex_unlock(&t->mu);
    return w;
}
