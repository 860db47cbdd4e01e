/*
 * key_watch - test helper for tests/integration/fs_safety.sh: watches one
 * directory with inotify and, on every IN_CREATE, IN_MODIFY, IN_MOVED_TO,
 * IN_ATTRIB and IN_CLOSE_WRITE, opens the file named (never through a
 * symlink), reads it and fstats the same descriptor: a file that holds
 * "PRIVATE KEY" while its mode gives the group or others read access is a
 * violation, printed as it is seen. Runs until SIGTERM or SIGINT, then prints
 * "events E checked C keys K violations V" and exits 1 when V > 0.
 *
 *   key_watch DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	static char file[1 << 20];
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	unsigned long events = 0, checked = 0, keys = 0, bad = 0;
	struct sigaction sa = { .sa_handler = on_signal };
	int in, dfd;

	if (argc != 2) {
		fprintf(stderr, "usage: key_watch DIR\n");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	dfd = open(argv[1], O_RDONLY | O_DIRECTORY);
	in = inotify_init1(IN_CLOEXEC);
	if (dfd < 0 || in < 0 ||
	    inotify_add_watch(in, argv[1], IN_CREATE | IN_MODIFY | IN_MOVED_TO | IN_ATTRIB |
						   IN_CLOSE_WRITE) < 0) {
		perror(argv[1]);
		return 2;
	}
	printf("watching %s\n", argv[1]);
	fflush(stdout);
	while (!stop) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("read");
			return 2;
		}
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			p += sizeof(*e) + e->len;
			events++;
			if (e->len == 0)
				continue;
			int fd = openat(dfd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0)
				continue; /* gone already, or a symlink */
			struct stat sb;
			ssize_t len = 0, r;
			while ((r = read(fd, file + len, sizeof(file) - 1 - (size_t)len)) > 0)
				len += r;
			if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
				checked++;
				file[len] = '\0';
				if (memmem(file, (size_t)len, "PRIVATE KEY", 11) != NULL) {
					keys++;
					if (sb.st_mode & 0044) {
						bad++;
						printf("VIOLATION: %s mode %04o holds a private key\n",
						       e->name, (unsigned)(sb.st_mode & 07777));
						fflush(stdout);
					}
				}
			}
			close(fd);
		}
	}
	printf("events %lu checked %lu keys %lu violations %lu\n", events, checked, keys, bad);
	return bad > 0;
}
