/*
 * Fuzz target: lvm's JSON reports (lvm__report_parse, backends/lvm/lvm_json.c) with the field
 * sets the backend asks for, and the tags of every LV row (lvm__tags_parse,
 * lvm__snap_tags_parse, lvm_name.c), as `lvs --reportformat json` would hand them over.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "lvm_internal.h"

static const char *const lv_fields[] = {"lv_name", "vg_name",          "lv_size",        "lv_tags",
                                        "lv_attr", "lv_health_status", "vg_extent_size", "pool_lv"};
static const char *const vg_fields[] = {"vg_name", "vg_extent_size", "vg_free", "vg_size"};
static const char *const pool_fields[] = {"lv_name", "lv_attr", "lv_size", "data_percent"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lvm__report rep;
    const char *text = (const char *)data;

    if (lvm__report_parse(text, size, "lv", lv_fields, 8, &rep) == 0) {
        for (size_t row = 0; row < rep.n_rows; row++) {
            struct lvm__meta m;
            struct lvm__snap_meta sm;
            int64_t gen;
            char vg[LVM_LV_NAME_MAX + 1], lv[LVM_LV_NAME_MAX + 1], id[BE_ID_MAX + 1];
            const char *tags = lvm__cell(&rep, row, 3);

            (void)lvm__tags_parse(tags, &m);
            (void)lvm__snap_tags_parse(tags, &sm);
            (void)lvm__is_our_lv_name(lvm__cell(&rep, row, 0));
            (void)lvm__is_our_snap_lv_name(lvm__cell(&rep, row, 0));
            (void)lvm__parse_u63(lvm__cell(&rep, row, 2), &gen);
            if (lvm__valid_vg_name(lvm__cell(&rep, row, 1)) &&
                lvm__is_our_lv_name(lvm__cell(&rep, row, 0)) &&
                lvm__vol_id(lvm__cell(&rep, row, 1), lvm__cell(&rep, row, 0), 0, id) == 0 &&
                (lvm__parse_id(id, vg, lv, &gen) != 0 || strcmp(vg, lvm__cell(&rep, row, 1)) != 0 ||
                 strcmp(lv, lvm__cell(&rep, row, 0)) != 0 || gen != 0))
                abort(); /* an id made from a row must give the row back */
        }
        lvm__report_release(&rep);
    }
    if (lvm__report_parse(text, size, "vg", vg_fields, 4, &rep) == 0)
        lvm__report_release(&rep);
    if (lvm__report_parse(text, size, "lv", pool_fields, 4, &rep) == 0)
        lvm__report_release(&rep);
    return 0;
}
