/* Unit tests: kube__trim_heap() (kube/kube_util.c), called by every informer after a list. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "kube_util.h"

#define THREADS 8
#define ROUNDS 200

static pthread_barrier_t start;

static void *trimmer(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&start); /* all of them call in at the same instant */
    kube__trim_heap();
    free(malloc(64)); /* and use the heap after it, as an informer does */
    return NULL;
}

/* Informers finish their first lists together at start-up and each trims. Under a sanitizer's
 * allocator glibc's heap has not been set up by then, and a bare malloc_trim() from several
 * threads at once set it up several times: the threads' exits then aborted the process
 * ("malloc assertion failure in __malloc_arena_thread_freeres"), in about one child in 16 of
 * this test under ASan. Each round is a fresh child (a heap not set up yet, when this process's
 * was not) whose threads trim at once and exit; every child must exit 0. */
static void test_concurrent_first_trims_then_exits(void **state)
{
    int died = 0;

    (void)state;
    for (int round = 0; round < ROUNDS; round++) {
        pid_t pid = fork();
        int st;

        assert_true(pid >= 0);
        if (pid == 0) {
            pthread_t t[THREADS];

            if (pthread_barrier_init(&start, NULL, THREADS) != 0)
                _exit(2);
            for (int i = 0; i < THREADS; i++)
                if (pthread_create(&t[i], NULL, trimmer, NULL) != 0)
                    _exit(2);
            for (int i = 0; i < THREADS; i++)
                pthread_join(t[i], NULL);
            _exit(0);
        }
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            died++;
    }
    assert_int_equal(died, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_first_trims_then_exits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
