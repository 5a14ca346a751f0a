/*
 * uringshim-stat - print the live counters of a process running under
 * liburingshim.so.
 *
 *   uringshim-stat [--json] [-w SECS] [-d DIR] PID
 *
 * Reads $URINGSHIM_STATS_DIR/uringshim.PID (default /dev/shm, or -d),
 * checks its magic/version/size, sums the per-thread slots and prints one
 * "name: value" line per counter (or one JSON object).  -w repeats every
 * SECS seconds until the file disappears (the process exited).  Exit 0,
 * 1 when the file is missing or not a stats file, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../stats.h"

static const char *const state_names[] = {
	[SHIM_STATE_INIT] = "init", [SHIM_STATE_ACTIVE] = "active",
	[SHIM_STATE_PASSTHROUGH] = "passthrough",
	[SHIM_STATE_DISABLED] = "disabled", [SHIM_STATE_KILLED] = "killed",
};

/* Every per-slot counter the tool sums and prints, in output order. */
#define SCALARS(X)							\
	X(passthrough) X(shim_syscalls) X(enters) X(sqes) X(bytes_sent)	\
	X(bytes_recv) X(served_from_buffer) X(sends_queued)		\
	X(deferred_errors) X(fallbacks) X(accel_total) X(wait_points)	\
	X(parks) X(unparks) X(spin_hits) X(spin_misses) X(spin_ns)

struct totals {
	uint64_t calls[SHIM_STATS_CALLS];
	uint64_t batch[SHIM_STATS_BATCH_BUCKETS];
#define FIELD(name) uint64_t name;
	SCALARS(FIELD)
#undef FIELD
};

static void sum(const struct shim_stats_file *s, struct totals *t)
{
	int i, j;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < SHIM_STATS_SLOTS; i++) {
		const struct shim_stats_slot *sl = &s->slot[i];

		for (j = 0; j < SHIM_STATS_CALLS; j++)
			t->calls[j] += sl->calls[j];
		for (j = 0; j < SHIM_STATS_BATCH_BUCKETS; j++)
			t->batch[j] += sl->batch_hist[j];
#define ADD(name) t->name += sl->name;
		SCALARS(ADD)
#undef ADD
	}
}

static void print_text(const struct shim_stats_file *s, const struct totals *t)
{
	unsigned int i, ncalls = s->ncalls < SHIM_STATS_CALLS ?
				 s->ncalls : SHIM_STATS_CALLS;

	printf("pid: %d\n", s->pid);
	printf("state: %s\n", s->state < 5 ? state_names[s->state] : "?");
	printf("reason: %.*s\n", (int)sizeof(s->reason), s->reason);
	printf("ring_flags: 0x%x\n", s->ring_flags);
	printf("features: 0x%x\n", s->features);
	printf("accel_now: %lld\n", (long long)s->accel_now);
	printf("threads: %u\n", s->nslots);
#define X(f) printf("%s: %llu\n", #f, (unsigned long long)t->f);
	SCALARS(X)
#undef X
	for (i = 0; i < ncalls; i++)
		printf("call.%.*s: %llu\n", (int)sizeof(s->call_names[i]),
		       s->call_names[i], (unsigned long long)t->calls[i]);
	for (i = 0; i < SHIM_STATS_BATCH_BUCKETS; i++)
		printf("batch.%u: %llu\n", 1U << i,
		       (unsigned long long)t->batch[i]);
}

static void print_json(const struct shim_stats_file *s, const struct totals *t)
{
	unsigned int i, ncalls = s->ncalls < SHIM_STATS_CALLS ?
				 s->ncalls : SHIM_STATS_CALLS;

	printf("{\"pid\":%d,\"state\":\"%s\",\"reason\":\"", s->pid,
	       s->state < 5 ? state_names[s->state] : "?");
	for (i = 0; i < sizeof(s->reason) && s->reason[i]; i++) {
		char c = s->reason[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if ((unsigned char)c >= 0x20)
			putchar(c);
	}
	printf("\",\"ring_flags\":%u,\"features\":%u,\"accel_now\":%lld,"
	       "\"threads\":%u", s->ring_flags, s->features,
	       (long long)s->accel_now, s->nslots);
#define X(f) printf(",\"%s\":%llu", #f, (unsigned long long)t->f);
	SCALARS(X)
#undef X
	printf(",\"calls\":{");
	for (i = 0; i < ncalls; i++)
		printf("%s\"%.*s\":%llu", i ? "," : "",
		       (int)sizeof(s->call_names[i]), s->call_names[i],
		       (unsigned long long)t->calls[i]);
	printf("},\"batch_log2\":[");
	for (i = 0; i < SHIM_STATS_BATCH_BUCKETS; i++)
		printf("%s%llu", i ? "," : "",
		       (unsigned long long)t->batch[i]);
	printf("]}\n");
}

/* Returns 0, or 1 when the file is missing or not ours. */
static int show(const char *path, bool json)
{
	struct shim_stats_file *s;
	struct totals t;
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "uringshim-stat: %s: %s\n", path,
			strerror(errno));
		return 1;
	}
	if (fstat(fd, &st) || st.st_size < (off_t)sizeof(*s)) {
		fprintf(stderr, "uringshim-stat: %s: not a stats file\n", path);
		close(fd);
		return 1;
	}
	s = mmap(NULL, sizeof(*s), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (s == MAP_FAILED) {
		perror("uringshim-stat: mmap");
		return 1;
	}
	if (s->magic != SHIM_STATS_MAGIC || s->version != SHIM_STATS_VERSION ||
	    s->size != sizeof(*s)) {
		fprintf(stderr, "uringshim-stat: %s: unknown layout "
			"(version %u)\n", path, s->version);
		munmap(s, sizeof(*s));
		return 1;
	}
	sum(s, &t);
	if (json)
		print_json(s, &t);
	else
		print_text(s, &t);
	fflush(stdout);
	munmap(s, sizeof(*s));
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: uringshim-stat [--json] [-w SECS] [-d DIR] "
		"PID\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "watch", required_argument, NULL, 'w' },
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = getenv("URINGSHIM_STATS_DIR");
	char path[512], *end;
	bool json = false;
	long watch = 0, pid;
	int c, ret;

	while ((c = getopt_long(argc, argv, "jw:d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'w':
			watch = strtol(optarg, &end, 10);
			if (*end || watch <= 0)
				usage();
			break;
		case 'd':
			dir = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	pid = strtol(argv[optind], &end, 10);
	if (*end || pid <= 0)
		usage();
	snprintf(path, sizeof(path), "%s/uringshim.%ld",
		 dir && *dir ? dir : "/dev/shm", pid);
	ret = show(path, json);
	while (watch && !ret) {
		sleep(watch);
		if (access(path, F_OK))
			break;
		if (!json)
			printf("\n");
		ret = show(path, json);
	}
	return ret;
}
