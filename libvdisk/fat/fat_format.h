/* On-disk layout of FAT32 (Microsoft's "FAT: General Overview of On-Disk
 * Format", 2000): byte offsets of every field we read or write. Structures
 * are encoded field by field with endian.h, never by casting buffers. */
#ifndef VD_FAT_FORMAT_H
#define VD_FAT_FORMAT_H

#include <stdint.h>

/* ---- Boot sector / BPB (sector 0, copy at FAT_BACKUP_BOOT_SECTOR) ---- */
#define BPB_JMP 0            /* 3: EB xx 90 or E9 xx xx */
#define BPB_OEM 3            /* 8 */
#define BPB_BYTES_PER_SEC 11 /* 2 */
#define BPB_SEC_PER_CLUS 13  /* 1 */
#define BPB_RSVD_SEC 14      /* 2 */
#define BPB_NUM_FATS 16      /* 1 */
#define BPB_ROOT_ENT 17      /* 2: 0 on FAT32 */
#define BPB_TOT_SEC16 19     /* 2: 0 on FAT32 */
#define BPB_MEDIA 21         /* 1 */
#define BPB_FAT_SZ16 22      /* 2: 0 on FAT32 */
#define BPB_SEC_PER_TRK 24   /* 2 */
#define BPB_NUM_HEADS 26     /* 2 */
#define BPB_HIDD_SEC 28      /* 4 */
#define BPB_TOT_SEC32 32     /* 4 */
#define BPB_FAT_SZ32 36      /* 4 */
#define BPB_EXT_FLAGS 40     /* 2: bit 7 = no mirroring, bits 0-3 active */
#define BPB_FS_VER 42        /* 2: must be 0.0 */
#define BPB_ROOT_CLUS 44     /* 4 */
#define BPB_FS_INFO 48       /* 2 */
#define BPB_BK_BOOT_SEC 50   /* 2 */
#define BPB_RESERVED 52      /* 12 */
#define BS_DRV_NUM 64        /* 1 */
#define BS_RESERVED1 65      /* 1 */
#define BS_BOOT_SIG 66       /* 1: 0x29 when the next three are valid */
#define BS_VOL_ID 67         /* 4 */
#define BS_VOL_LAB 71        /* 11 */
#define BS_FS_TYPE 82        /* 8: "FAT32   " (informational only) */
#define BS_BOOT_CODE 90      /* 420 */
#define BS_SIGNATURE 510     /* 2: 0x55 0xAA */
_Static_assert(BPB_FAT_SZ32 + 4 == BPB_EXT_FLAGS, "BPB layout");
_Static_assert(BS_VOL_LAB + 11 == BS_FS_TYPE, "BPB layout");
_Static_assert(BS_FS_TYPE + 8 == BS_BOOT_CODE, "BPB layout");
_Static_assert(BS_BOOT_CODE + 420 == BS_SIGNATURE, "BPB layout");

/* ---- FSInfo sector ---- */
#define FSI_LEAD_SIG 0     /* 4: 0x41615252 */
#define FSI_STRUC_SIG 484  /* 4: 0x61417272 */
#define FSI_FREE_COUNT 488 /* 4: 0xFFFFFFFF = unknown */
#define FSI_NXT_FREE 492   /* 4: 0xFFFFFFFF = unknown */
#define FSI_TRAIL_SIG 508  /* 4: 0xAA550000 */
#define FSI_LEAD_VALUE 0x41615252u
#define FSI_STRUC_VALUE 0x61417272u
#define FSI_TRAIL_VALUE 0xAA550000u
#define FSI_UNKNOWN 0xFFFFFFFFu
_Static_assert(FSI_NXT_FREE + 4 + 12 == FSI_TRAIL_SIG, "FSInfo layout");

/* ---- What we write at format time ---- */
#define FAT_SECTOR 512u  /* our sector size */
#define FAT_RSVD_MIN 32u /* as mkfs.fat */
#define FAT_FSINFO_SECTOR 1u
#define FAT_BACKUP_BOOT_SECTOR 6u /* backup FSInfo follows at 7 */
#define FAT_MEDIA 0xF8u
#define FAT_NUM_FATS 2u
#define FAT_ROOT_CLUSTER 2u

/* ---- FAT entries: 28 bits used, the top 4 preserved ---- */
#define FAT_ENTRY_BYTES 4u
#define FAT_MASK 0x0FFFFFFFu
#define FAT_FREE 0u
#define FAT_BAD 0x0FFFFFF7u
#define FAT_EOC_MIN 0x0FFFFFF8u
#define FAT_EOC 0x0FFFFFFFu
#define FAT_FIRST_CLUSTER 2u
/* FAT[1] bits: set = clean shutdown / no hard error. Linux clears the
 * clean bit on the first write after mount and sets it at unmount. */
#define FAT1_CLEAN 0x08000000u
#define FAT1_NO_ERROR 0x04000000u
/* FAT32 needs at least this many clusters (fewer would be FAT16), and
 * cluster numbers must stay below the reserved range. */
#define FAT32_MIN_CLUSTERS 65525u
#define FAT32_MAX_CLUSTERS 0x0FFFFFF5u
#define FAT_MAX_FILE 0xFFFFFFFFull /* 4 GiB - 1 */

/* ---- Directory entries (32 bytes) ---- */
#define DIRENT_SIZE 32u
#define DIR_NAME 0          /* 11: 8.3, space padded */
#define DIR_ATTR 11         /* 1 */
#define DIR_NTRES 12        /* 1: 0x08 base lower case, 0x10 ext lower */
#define DIR_CRT_TENTH 13    /* 1: 0..199 hundredths (10 ms units) */
#define DIR_CRT_TIME 14     /* 2 */
#define DIR_CRT_DATE 16     /* 2 */
#define DIR_LST_ACC_DATE 18 /* 2 */
#define DIR_FST_CLUS_HI 20  /* 2 */
#define DIR_WRT_TIME 22     /* 2 */
#define DIR_WRT_DATE 24     /* 2 */
#define DIR_FST_CLUS_LO 26  /* 2 */
#define DIR_FILE_SIZE 28    /* 4 */
_Static_assert(DIR_FILE_SIZE + 4 == DIRENT_SIZE, "dirent layout");
#define DIR_NAME_LEN 11u
#define DIR_FREE_BYTE 0xE5u /* deleted entry */
#define DIR_END_BYTE 0x00u  /* this and all following slots are free */
#define DIR_KANJI_E5 0x05u  /* stored for a real leading 0xE5 */
#define NTRES_LOWER_BASE 0x08u
#define NTRES_LOWER_EXT 0x10u

#define ATTR_READ_ONLY 0x01u
#define ATTR_HIDDEN 0x02u
#define ATTR_SYSTEM 0x04u
#define ATTR_VOLUME_ID 0x08u
#define ATTR_DIRECTORY 0x10u
#define ATTR_ARCHIVE 0x20u
#define ATTR_LONG_NAME 0x0Fu
#define ATTR_LONG_NAME_MASK 0x3Fu

/* ---- Long-name entries (32 bytes, same slots) ---- */
#define LDIR_ORD 0          /* 1: sequence 1..20, | 0x40 on the last */
#define LDIR_NAME1 1        /* 10: UTF-16 units 1..5 */
#define LDIR_ATTR 11        /* 1: ATTR_LONG_NAME */
#define LDIR_TYPE 12        /* 1: 0 */
#define LDIR_CHKSUM 13      /* 1: checksum of the 8.3 alias */
#define LDIR_NAME2 14       /* 12: units 6..11 */
#define LDIR_FST_CLUS_LO 26 /* 2: 0 */
#define LDIR_NAME3 28       /* 4: units 12..13 */
_Static_assert(LDIR_NAME3 + 4 == DIRENT_SIZE, "LFN layout");
#define LDIR_LAST 0x40u
#define LDIR_ORD_MASK 0x3Fu
#define LFN_UNITS_PER_ENTRY 13u
#define LFN_MAX_UNITS 255u
#define LFN_MAX_ENTRIES 20u /* ceil(255 / 13) */
_Static_assert(LFN_MAX_ENTRIES *LFN_UNITS_PER_ENTRY >= LFN_MAX_UNITS, "LFN");

#endif
