/*
 * Fuzz target: kubeconfig files (kube_config_parse, kube/kube_config.c, on the YAML reader of
 * kube/kube_yaml.c) and the ExecCredential a credential plugin prints (kube_auth__parse). The
 * input is a kubeconfig; after a "\0\0\0\n" separator, an ExecCredential. Relative file names
 * resolve against an empty directory in the work directory. Absolute names are opened as they are:
 * the runner feeds /dev/null as stdin (tools/fuzz.sh) so that "/dev/stdin" cannot block.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "kube_auth.h"
#include "kube_config.h"
#include "kube_yaml.h"

static char dir[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    /* in the work directory (tools/fuzz.sh makes a fresh one per run and removes it) */
    if (!getcwd(dir, sizeof(dir) - 16)) {
        perror("getcwd");
        exit(1);
    }
    strcat(dir, "/kubeconfig");
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        perror(dir);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cut = fuzz_cut(data, size);
    struct kube_config c;
    cJSON *doc = NULL;
    char err[256];

    if (kube_yaml_parse((const char *)data, cut, &doc, err, sizeof(err)) == 0)
        cJSON_Delete(doc);

    kube_config_init(&c);
    if (kube_config_parse(&c, (const char *)data, cut, dir, NULL) == 0)
        (void)kube_config_check_transport(&c);
    kube_config_release(&c);

    if (cut < size) {
        const char *cred = (const char *)data + cut + 4;
        size_t n = size - cut - 4;
        struct kube_cred kc;

        for (int v = 0; v < 2; v++) {
            memset(&kc, 0, sizeof(kc));
            if (kube_auth__parse(cred, n, v ? KUBE_EXEC_API_V1BETA1 : KUBE_EXEC_API_V1, &kc, err,
                                 sizeof(err)) == 0)
                kube_cred_release(&kc);
        }
    }
    return 0;
}
