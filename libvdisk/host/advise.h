/* The memory hint the bundled hosts give (vd_host.mem_advise). */
#ifndef VD_HOST_ADVISE_H
#define VD_HOST_ADVISE_H

#include <stddef.h>

void vdh_mem_advise(void *ctx, void *addr, size_t len);
/* The same hint, then the range faulted in (VD_HOST_PREFAULT). */
void vdh_mem_prefault(void *ctx, void *addr, size_t len);

#endif
