/*
 * What the pms_*.c files share and nobody else needs: the default office hours, the time
 * format of the key document and the audit log.
 */
#ifndef PL_PMS_INTERNAL_H
#define PL_PMS_INTERNAL_H

#include <stddef.h>
#include <time.h>

#define PL_PMS_DEFAULT_HOURS "mon-fri 08:00-17:00"

/* t as "2026-12-06T14:45:58Z" into buf. */
void pl_pms_iso_utc(time_t t, char *buf, size_t size);

#endif
