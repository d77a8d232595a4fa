/*
 * A test shared object whose constructor leaves a mark: it creates the file
 * named by the environment variable MGROK_CTOR_MARK. Code of a shared object
 * runs as soon as it is loaded, before any check of its descriptor, so the
 * mark proves that a program dlopen'd it. tests/e2e/test_abuse_plugins.py
 * names it in "plugins" by paths outside plugin_dir, which must be refused
 * before anything is loaded. It is not an mgrok plugin (no entry symbol).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void leave_mark(void)
{
	const char *path = getenv("MGROK_CTOR_MARK");
	if (!path || !*path)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}
