/* vd_fs_format leaves a new volume settled (vd_image_settle, image_fs.h):
 * its metadata in place and durable, its commit record naming no journal.
 * Seen from outside: with both journal areas wiped right after the
 * format (no close), the image opens and the volume checks clean. Before
 * vd_fs_format settled, the format's record still named its journal (the
 * redo of the FAT and root directory) and that open failed, and the first
 * commits after a format paid for the metadata's flush and one more flush
 * before reusing that journal area (vhdbench web-create, issue 15). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fat_util.h"
#include "image_format.h"
#include "vdisk/check.h"

static void on_problem(void *ctx, const vd_fsck_problem *p)
{
    unsigned *n = ctx;
    if (p->kind != VD_FSCK_P_DIRTY)
        (*n)++;
}

static void test_format_needs_no_journal(void **state)
{
    (void)state;
    static const uint8_t key[VD_KEY_BYTES] = {5, 1};
    vd_host *mem;
    FU_OK(vd_host_mem_new(&mem));
    vd_create_opts c;
    memset(&c, 0, sizeof c);
    c.nblocks = 10240; /* 40 MiB: FAT32 needs 65,525 clusters */
    vd_image *img;
    FU_OK(vd_image_create(mem, key, &c, NULL, &img));
    FU_OK(vd_fs_format(img, NULL));

    /* The host as a crash right now would leave it, journals wiped. */
    uint64_t size;
    uint8_t *d = vd_host_mem_data(mem, &size);
    uint8_t *copy = malloc(size);
    assert_non_null(copy);
    memcpy(copy, d, size);
    vd_header h;
    assert_int_equal(vd_header_decode(&h, copy), 0);
    assert_true((h.journal_start + 2 * (uint64_t)h.journal_blocks) * VDF_BLOCK <= size);
    memset(copy + h.journal_start * VDF_BLOCK, 0xA5,
           2 * (size_t)h.journal_blocks * VDF_BLOCK);
    vd_host *crashed;
    FU_OK(vd_host_mem_new(&crashed));
    FU_OK(vd_host_mem_set(crashed, copy, size));
    free(copy);

    vd_open_opts o;
    memset(&o, 0, sizeof o);
    o.read_only = 1;
    vd_image *ro;
    FU_OK(vd_image_open(crashed, key, &o, &ro));
    unsigned problems = 0;
    vd_fsck_opts fo = {.mode = VD_FSCK_CHECK, .ctx = &problems, .report = on_problem};
    vd_fsck_result res;
    FU_OK(vd_fsck(ro, &fo, &res));
    assert_true(res.fs_checked);
    assert_int_equal(problems, 0);
    FU_OK(vd_image_close(ro));

    /* And the image formatted goes on as usual. */
    vd_fs *fs;
    FU_OK(vd_fs_mount(img, NULL, &fs));
    FU_OK(vd_fs_mkdir(fs, "/d"));
    FU_OK(vd_fs_unmount(fs));
    FU_OK(vd_image_close(img));
    vd_host_mem_free(crashed);
    vd_host_mem_free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_needs_no_journal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
