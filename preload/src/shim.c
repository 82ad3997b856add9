/* The variadic exec functions, which stable Rust cannot define. Each collects its
 * arguments into a NULL-terminated argv on the stack (no malloc: this may run in a vfork
 * child) and hands over to the Rust wrapper. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>

/* Set by the Rust constructor to its wrapper (kind: 0 = execl, 1 = execle, 2 = execlp).
 * A pointer rather than a call by name: a Rust function with a C name would be exported
 * from the library, and only the 13 intercepted symbols may be. */
typedef int (*rampart_exec_fn)(int kind, const char *path, char *const argv[],
                               char *const envp[]);
__attribute__((visibility("hidden"))) rampart_exec_fn rampart_shim_target;

/* Declared here rather than from <unistd.h>: glibc marks the arguments nonnull, which
 * would let the compiler drop our NULL checks. */
extern char **environ;
int execve(const char *path, char *const argv[], char *const envp[]);
int execvpe(const char *file, char *const argv[], char *const envp[]);

/* Before the constructor ran (an exec from an earlier library's constructor), go through
 * our own exported execve/execvpe, which initialise lazily. */
static int fallback(int kind, const char *path, char *const argv[], char *const envp[]) {
    if (kind == 2)
        return execvpe(path, argv, environ);
    return execve(path, argv, kind == 1 ? envp : environ);
}

/* Bounded so a runaway argument list cannot blow the stack; the kernel refuses far
 * fewer anyway (ARG_MAX). */
#define RAMPART_MAX_ARGS (1 << 20)

#define COLLECT_AND_CALL(KIND, PATH, ARG)                                      \
    do {                                                                       \
        va_list ap;                                                            \
        size_t n = 0;                                                          \
        if ((ARG) != NULL) {                                                   \
            n = 1;                                                             \
            va_start(ap, ARG);                                                 \
            while (va_arg(ap, const char *) != NULL) {                         \
                if (++n >= RAMPART_MAX_ARGS) {                                 \
                    va_end(ap);                                                \
                    errno = E2BIG;                                             \
                    return -1;                                                 \
                }                                                              \
            }                                                                  \
            va_end(ap);                                                        \
        }                                                                      \
        const char *argv[n + 1];                                               \
        char *const *envp = NULL;                                              \
        va_start(ap, ARG);                                                     \
        if (n > 0) {                                                           \
            argv[0] = (ARG);                                                   \
            for (size_t i = 1; i < n; i++)                                     \
                argv[i] = va_arg(ap, const char *);                            \
            (void)va_arg(ap, const char *); /* the terminating NULL */         \
        }                                                                      \
        argv[n] = NULL;                                                        \
        if ((KIND) == 1)                                                       \
            envp = va_arg(ap, char *const *);                                  \
        va_end(ap);                                                            \
        rampart_exec_fn target = rampart_shim_target;                          \
        if (target == NULL)                                                    \
            target = fallback;                                                 \
        return target((KIND), (PATH), (char *const *)argv, envp);              \
    } while (0)

int execl(const char *path, const char *arg, ...) { COLLECT_AND_CALL(0, path, arg); }

int execle(const char *path, const char *arg, ...) { COLLECT_AND_CALL(1, path, arg); }

int execlp(const char *file, const char *arg, ...) { COLLECT_AND_CALL(2, file, arg); }

/* Unoptimised builds link parts of the precompiled `core` that name the unwinding
 * personality routine, although with panic=abort nothing ever unwinds. Hidden, so it is
 * never exported; weak, so the std test build's own definition wins. */
void abort(void);
__attribute__((weak, visibility("hidden"))) void rust_eh_personality(void) { abort(); }
