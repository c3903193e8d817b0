/*
 * actionnet-edge's QEMU TCG plugin: guest instructions executed inside marked regions.
 *
 * The guest marks a region with prctl(ARMCOST_MARK, 1) before the measured call and
 * prctl(ARMCOST_MARK, 0) after it (an option number Linux does not know: the call fails
 * with EINVAL and does nothing else). Instructions are counted per translation block with
 * an inline per-vCPU add, summed over all vCPUs (threads) at each marker. One line per
 * region is appended to the file named by the plugin argument out=PATH:
 *   region <n> <instructions>
 * and a final "end <regions> <total instructions>" line at exit. Unbalanced markers write
 * an "error ..." line, which the caller reports.
 *
 * Built against the qemu-plugin.h of the QEMU it is loaded into.
 */
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define ARMCOST_MARK 0x41524d43ULL /* "ARMC" */
#define AARCH64_NR_PRCTL 167

static struct qemu_plugin_scoreboard *counts;
static qemu_plugin_u64 insns;
static GMutex lock;
static FILE *out;
static int open_region; /* 1 while a region is open */
static uint64_t region_start;
static unsigned long regions;

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
        tb, QEMU_PLUGIN_INLINE_ADD_U64, insns, qemu_plugin_tb_n_insns(tb));
}

static void mark(int opening)
{
    uint64_t now = qemu_plugin_u64_sum(insns);

    if (opening && !open_region) {
        open_region = 1;
        region_start = now;
    } else if (!opening && open_region) {
        open_region = 0;
        fprintf(out, "region %lu %" PRIu64 "\n", regions++, now - region_start);
    } else {
        fprintf(out, "error unbalanced marker %s after %lu regions\n",
                opening ? "open" : "close", regions);
    }
    fflush(out);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num,
                       uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                       uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num != AARCH64_NR_PRCTL || a1 != ARMCOST_MARK) {
        return;
    }
    g_mutex_lock(&lock);
    mark(a2 != 0);
    g_mutex_unlock(&lock);
}

static void at_exit(qemu_plugin_id_t id, void *data)
{
    g_mutex_lock(&lock);
    if (open_region) {
        fprintf(out, "error region %lu never closed\n", regions);
    }
    fprintf(out, "end %lu %" PRIu64 "\n", regions, qemu_plugin_u64_sum(insns));
    fclose(out);
    out = NULL;
    g_mutex_unlock(&lock);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *path = NULL;

    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else {
            fprintf(stderr, "armcost plugin: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    if (path == NULL || strcmp(info->target_name, "aarch64") != 0) {
        fprintf(stderr, "armcost plugin: needs out=PATH and an aarch64 guest\n");
        return -1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        fprintf(stderr, "armcost plugin: cannot write %s\n", path);
        return -1;
    }
    counts = qemu_plugin_scoreboard_new(sizeof(uint64_t));
    insns = qemu_plugin_scoreboard_u64(counts);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
