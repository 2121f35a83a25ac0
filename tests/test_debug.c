/* Debugging guests: fault details that name the guest's code, from ELF and
 * from snapshot files; a guest binary that changed is not used for symbols;
 * core dumps that the real gdb opens, on a fault, from a snapshot file and
 * on demand; and their errors. Runs once per backend (tests/run.sh). */
#include <arpa/inet.h>
#include <elf.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mote.h>

#include "test.h"

#define GUEST MOTE_BUILD_DIR "/guests/debug.elf"
#define OTHER_GUEST MOTE_BUILD_DIR "/guests/basic.elf"
#define GUEST_SOURCE "tests/guests/debug/guest.c"

static char tmp_dir[64];

static const char *tmp(const char *name)
{
	static char paths[8][PATH_MAX];
	static unsigned next;
	if (!tmp_dir[0]) {
		snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/mote-test-debug.XXXXXX");
		if (!mkdtemp(tmp_dir))
			abort();
	}
	char *p = paths[next++ % 8];
	snprintf(p, PATH_MAX, "%s/%s", tmp_dir, name);
	return p;
}

/* The line of the guest's source that carries `marker`. */
static int source_line(const char *marker)
{
	FILE *f = fopen(GUEST_SOURCE, "r");
	char line[512];
	int n = 0, found = -1;
	while (f && found < 0 && fgets(line, sizeof(line), f)) {
		n++;
		if (strstr(line, marker))
			found = n;
	}
	if (f)
		fclose(f);
	return found;
}

static int copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[65536];
	size_t n;
	int rc = in && out ? 0 : -1;
	while (!rc && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		rc = fwrite(buf, 1, n, out) == n ? 0 : -1;
	if (in)
		fclose(in);
	if (out && fclose(out))
		rc = -1;
	return rc;
}

static mote_sandbox *new_sandbox(const char *path, const mote_config *cfg)
{
	mote_sandbox *sb = NULL;
	int rc = mote_sandbox_new(path, cfg, NULL, &sb);
	if (rc)
		TEST_FAILF("mote_sandbox_new(%s): %s: %s", path, mote_errname(rc), mote_last_error());
	return sb;
}

static int call1(mote_sandbox *sb, const char *fn, int a, int b, size_t nargs, mote_value *r)
{
	mote_value args[2] = {mote_i32(a), mote_i32(b)};
	return mote_sandbox_call(sb, fn, args, nargs, r);
}

/* A snapshot file of a fresh sandbox of `guest`, then a sandbox from it. */
static mote_sandbox *from_file(const char *guest, const char *file, const mote_config *cfg)
{
	mote_sandbox *sb = new_sandbox(guest, cfg);
	mote_snapshot *snap = NULL;
	if (!sb || mote_sandbox_snapshot(sb, &snap) || mote_snapshot_save(snap, file, 0)) {
		TEST_FAILF("saving %s: %s", file, mote_last_error());
		mote_snapshot_free(snap);
		mote_sandbox_free(sb);
		return NULL;
	}
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
	snap = NULL;
	sb = NULL;
	int rc = mote_snapshot_open(file, 0, &snap);
	if (!rc)
		rc = mote_sandbox_from_snapshot(snap, NULL, cfg, &sb);
	if (rc)
		TEST_FAILF("starting from %s: %s: %s", file, mote_errname(rc), mote_last_error());
	mote_snapshot_free(snap);
	return sb;
}

static void check_crash_detail(mote_sandbox *sb)
{
	mote_value r;
	char want[64];
	snprintf(want, sizeof(want), " in store_through (guest.c:%d), called from middle+0x",
	         source_line("FAULT LINE"));
	CHECK_EQ_INT(call1(sb, "crash", 5, 0, 1, &r), -MOTE_EFAULT);
	const char *e = mote_sandbox_last_error(sb);
	CHECK_CONTAINS(e, "memory access violation: write at 0x0 (page not mapped; rip 0x");
	CHECK_CONTAINS(e, want);
	CHECK_CONTAINS(e, "(guest.c:");
	CHECK_CONTAINS(e, ", called from mote_wrap_crash+0x");
	CHECK_CONTAINS(mote_last_error(), want); /* the thread's detail says the same */
}

TEST(faults_name_the_code)
{
	mote_sandbox *sb = new_sandbox(GUEST, NULL);
	REQUIRE(sb);
	mote_sandbox_free(sb); /* backends open what they keep for the process */
	int fds = count_fds();
	sb = new_sandbox(GUEST, NULL);
	REQUIRE(sb);
	check_crash_detail(sb);
	mote_sandbox_free(sb);
	CHECK_EQ_INT(count_fds(), fds);
}

TEST(exceptions_aborts_and_timeouts_name_the_code)
{
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	REQUIRE(mote_config_set_timeout_us(cfg, 100 * 1000) == 0);
	mote_value r;
	mote_sandbox *sb = new_sandbox(GUEST, cfg);
	REQUIRE(sb);
	CHECK_EQ_INT(call1(sb, "divide", 1, 0, 2, &r), -MOTE_EEXCEPTION);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "guest exception #DE (divide error) at rip 0x");
	CHECK_CONTAINS(mote_sandbox_last_error(sb), " in quotient+0x");
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "called from mote_wrap_divide+0x");
	mote_sandbox_free(sb);

	sb = new_sandbox(GUEST, cfg);
	REQUIRE(sb);
	CHECK_EQ_INT(call1(sb, "give_up", 0, 0, 0, &r), -MOTE_EABORT);
	CHECK_CONTAINS(mote_sandbox_last_error(sb),
	               "guest aborted: code 3: the guest gives up in mote_abort+0x");
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "called from mote_wrap_give_up+0x");
	mote_sandbox_free(sb);

	sb = new_sandbox(GUEST, cfg);
	REQUIRE(sb);
	CHECK_EQ_INT(call1(sb, "spin", 0, 0, 0, &r), -MOTE_ETIMEDOUT);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "call exceeded its timeout of 100000 us in ");
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "in mote_wrap_spin");
	mote_sandbox_free(sb);

	/* A call that succeeds says nothing of where it was. */
	sb = new_sandbox(GUEST, cfg);
	REQUIRE(sb);
	CHECK_EQ_INT(call1(sb, "work", 4, 0, 1, &r), 0);
	CHECK_EQ_INT(r.v.i32, 26);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "");
	mote_sandbox_free(sb);
	mote_config_free(cfg);
}

static void file_sha256_hex(const char *path, char out[65])
{
	FILE *f = fopen(path, "rb");
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	char buf[65536];
	size_t n;
	while (f && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		EVP_DigestUpdate(ctx, buf, n);
	unsigned char md[32];
	EVP_DigestFinal_ex(ctx, md, NULL);
	EVP_MD_CTX_free(ctx);
	if (f)
		fclose(f);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

TEST(snapshot_files_record_the_guest)
{
	const char *file = tmp("debug.snap");
	mote_sandbox *sb = from_file(GUEST, file, NULL);
	REQUIRE(sb);
	check_crash_detail(sb);
	mote_sandbox_free(sb);

	mote_snapshot_info info;
	REQUIRE(mote_snapshot_info_read(file, &info) == 0);
	char abs[PATH_MAX], hash[65];
	REQUIRE(realpath(GUEST, abs));
	file_sha256_hex(GUEST, hash);
	CHECK_EQ_STR(info.guest_path, abs);
	CHECK_EQ_STR(info.guest_hash, hash);
	mote_snapshot_info_free(&info);
	unlink(file);
}

/* Symbols from another build would name the wrong code: a guest file that
 * changed since is not used, and the detail says so. */
TEST(a_changed_guest_gives_no_symbols)
{
	const char *copy = tmp("guest-copy.elf"), *file = tmp("copy.snap");
	REQUIRE(copy_file(GUEST, copy) == 0);
	mote_sandbox *elf_sb = new_sandbox(copy, NULL);
	mote_sandbox *file_sb = from_file(copy, file, NULL);
	REQUIRE(elf_sb && file_sb);
	REQUIRE(copy_file(OTHER_GUEST, copy) == 0);
	char abs[PATH_MAX], want[PATH_MAX + 80];
	REQUIRE(realpath(copy, abs));
	snprintf(want, sizeof(want), "; no symbols: %s is not the guest binary this memory came from",
	         abs);
	mote_sandbox *both[2] = {elf_sb, file_sb};
	for (int i = 0; i < 2; i++) {
		mote_value r;
		CHECK_EQ_INT(call1(both[i], "crash", 5, 0, 1, &r), -MOTE_EFAULT);
		CHECK_CONTAINS(mote_sandbox_last_error(both[i]), want);
		CHECK(!strstr(mote_sandbox_last_error(both[i]), "store_through"));
		mote_sandbox_free(both[i]);
	}
	unlink(copy);
	unlink(file);
}

/* The core file named at the end of a detail. */
static bool core_path_of(const char *detail, char *out, size_t len)
{
	const char *p = strstr(detail, "; core dumped to ");
	if (!p)
		return false;
	snprintf(out, len, "%s", p + strlen("; core dumped to "));
	return true;
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* AT_ENTRY from the core's NT_AUXV note; 0 if there is none. */
static uint64_t core_at_entry(const char *path, uint16_t *type)
{
	FILE *f = fopen(path, "rb");
	static unsigned char buf[1 << 20];
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	if (f)
		fclose(f);
	Elf64_Ehdr eh;
	if (n < sizeof(eh))
		return 0;
	memcpy(&eh, buf, sizeof(eh));
	*type = eh.e_type;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t at = eh.e_phoff + (uint64_t)i * sizeof(ph);
		if (at + sizeof(ph) > n)
			return 0;
		memcpy(&ph, buf + at, sizeof(ph));
		if (ph.p_type != PT_NOTE || ph.p_offset + ph.p_filesz > n)
			continue;
		for (uint64_t o = ph.p_offset; o + sizeof(Elf64_Nhdr) <= ph.p_offset + ph.p_filesz;) {
			Elf64_Nhdr nh;
			memcpy(&nh, buf + o, sizeof(nh));
			uint64_t desc = o + sizeof(nh) + ((nh.n_namesz + 3) & ~3u);
			if (nh.n_type == NT_AUXV && desc + 16 <= n) {
				uint64_t av[2];
				memcpy(av, buf + desc, 16);
				return av[0] == AT_ENTRY ? av[1] : 0;
			}
			o = desc + ((nh.n_descsz + 3) & ~3u);
		}
	}
	return 0;
}

static uint64_t elf_entry(const char *path)
{
	Elf64_Ehdr eh = {0};
	FILE *f = fopen(path, "rb");
	if (f) {
		if (fread(&eh, sizeof(eh), 1, f) != 1)
			eh.e_entry = 0;
		fclose(f);
	}
	return eh.e_entry;
}

/* Run gdb in batch mode on the guest ELF with `cmds`; its output. */
static char *run_gdb(const char *const *cmds, size_t ncmds)
{
	const char *out_path = tmp("gdb.out");
	char *argv[64];
	size_t a = 0;
	argv[a++] = "gdb";
	argv[a++] = "-batch";
	argv[a++] = "-nx";
	for (size_t i = 0; i < ncmds && a < 60; i++) {
		argv[a++] = "-ex";
		argv[a++] = (char *)cmds[i];
	}
	argv[a++] = GUEST;
	argv[a] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp("gdb", argv);
		_exit(127);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 127) {
		TEST_FAILF("gdb did not run (status 0x%x): scripts/deps.sh installs it", status);
		return NULL;
	}
	FILE *f = fopen(out_path, "rb");
	static char text[65536];
	size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
	text[n] = 0;
	if (f)
		fclose(f);
	unlink(out_path);
	return text;
}

TEST(core_dumps_open_in_gdb)
{
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", tmp("cores"));
	REQUIRE(mkdir(dir, 0700) == 0);
	REQUIRE(mote_config_set_core_dump(cfg, dir) == 0);
	/* 64 MiB of heap, almost none of it used: the core stays small. */
	REQUIRE(mote_config_set_heap_size(cfg, 64 << 20) == 0);

	char fault_core[PATH_MAX] = "", file_core[PATH_MAX] = "";
	const char *demand_core = tmp("on-demand.core");
	mote_value r;
	mote_sandbox *sb = new_sandbox(GUEST, cfg);
	REQUIRE(sb);
	mote_config_free(cfg); /* the sandbox keeps its own copy of the directory */
	cfg = NULL;
	CHECK_EQ_INT(call1(sb, "crash", 5, 0, 1, &r), -MOTE_EFAULT);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), dir);
	CHECK(core_path_of(mote_sandbox_last_error(sb), fault_core, sizeof(fault_core)));
	CHECK_CONTAINS(fault_core, "/core.mote.");
	mote_memory_info mi;
	REQUIRE(mote_sandbox_memory_info(sb, &mi) == 0);
	CHECK(mi.mem_size > (64u << 20));
	off_t size = file_size(fault_core);
	CHECK(size > 0 && size < (1 << 20));
	struct stat st;
	CHECK(stat(fault_core, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* On demand, after the fault: where it stopped. */
	CHECK_EQ_INT(mote_sandbox_core_dump(sb, demand_core), 0);
	uint16_t type = 0;
	CHECK_EQ_U64(core_at_entry(demand_core, &type), elf_entry(GUEST));
	CHECK_EQ_INT(type, ET_CORE);
	mote_sandbox_free(sb);

	REQUIRE(mote_config_new(&cfg) == 0);
	REQUIRE(mote_config_set_core_dump(cfg, dir) == 0);
	sb = from_file(GUEST, tmp("cores.snap"), cfg);
	REQUIRE(sb);
	CHECK_EQ_INT(call1(sb, "divide", 7, 0, 2, &r), -MOTE_EEXCEPTION);
	CHECK(core_path_of(mote_sandbox_last_error(sb), file_core, sizeof(file_core)));
	CHECK_EQ_U64(core_at_entry(file_core, &type), elf_entry(GUEST));
	mote_sandbox_free(sb);

	/* Between calls: the memory a finished call left. */
	const char *idle_core = tmp("idle.core");
	sb = new_sandbox(GUEST, NULL);
	REQUIRE(sb);
	CHECK_EQ_INT(call1(sb, "work", 4, 0, 1, &r), 0);
	CHECK_EQ_INT(mote_sandbox_core_dump(sb, idle_core), 0);
	CHECK_EQ_INT(call1(sb, "work", 5, 0, 1, &r), 0); /* the sandbox goes on */
	CHECK_EQ_INT(r.v.i32, 37);
	mote_sandbox_free(sb);
	mote_config_free(cfg);

	char c1[PATH_MAX + 16], c2[PATH_MAX + 16], c3[PATH_MAX + 16];
	snprintf(c1, sizeof(c1), "core-file %s", fault_core);
	snprintf(c2, sizeof(c2), "core-file %s", file_core);
	snprintf(c3, sizeof(c3), "core-file %s", idle_core);
	const char *cmds[] = {c1, "bt", "echo @@\\n", c2, "bt", "echo @@\\n", c3, "print sink"};
	char *out = run_gdb(cmds, sizeof(cmds) / sizeof(cmds[0]));
	REQUIRE(out);
	char line[32];
	snprintf(line, sizeof(line), "guest.c:%d", source_line("FAULT LINE"));
	char *second = strstr(out, "@@");
	char *third = second ? strstr(second + 2, "@@") : NULL;
	if (!second || !third)
		TEST_FAILF("gdb output: %s", out);
	REQUIRE(second && third);
	*second = *third = 0;
	CHECK_CONTAINS(out, "Program terminated with signal SIGSEGV");
	CHECK_CONTAINS(out, "#0  store_through (p=p@entry=0x0, v=v@entry=15)");
	CHECK_CONTAINS(out, line);
	CHECK_CONTAINS(out, " in middle (");
	CHECK_CONTAINS(out, " in crash (");
	CHECK_CONTAINS(second + 2, "Program terminated with signal SIGFPE");
	CHECK_CONTAINS(second + 2, "in quotient (a=a@entry=7, b=b@entry=0)");
	CHECK_CONTAINS(second + 2, " in divide (");
	CHECK_CONTAINS(third + 2, "$1 = 25");
	unlink(fault_core);
	unlink(file_core);
	unlink(demand_core);
	unlink(idle_core);
	unlink(tmp("cores.snap"));
	rmdir(dir);
}

TEST(core_dump_errors)
{
	CHECK_EQ_INT(mote_config_set_core_dump(NULL, "/tmp"), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_last_error(), "mote_config_set_core_dump: no config");
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	CHECK_EQ_INT(mote_config_set_core_dump(cfg, ""), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_last_error(), "empty directory");
	CHECK_EQ_INT(mote_sandbox_core_dump(NULL, "/tmp/x"), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_last_error(), "mote_sandbox_core_dump: no sandbox");

	/* A directory that is not there: the call's own error, and why no core. */
	REQUIRE(mote_config_set_core_dump(cfg, "/nonexistent/cores") == 0);
	mote_sandbox *sb = new_sandbox(GUEST, cfg);
	REQUIRE(sb);
	mote_value r;
	CHECK_EQ_INT(call1(sb, "crash", 5, 0, 1, &r), -MOTE_EFAULT);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), " in store_through (guest.c:");
	CHECK_CONTAINS(mote_sandbox_last_error(sb),
	               "; no core dump: cannot create /nonexistent/cores/core.mote.");
	CHECK_EQ_INT(mote_sandbox_core_dump(sb, NULL), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_last_error(), "mote_sandbox_core_dump: no path");
	CHECK_EQ_INT(mote_sandbox_core_dump(sb, "/nonexistent/dir/core"), -MOTE_EIO);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "cannot create /nonexistent/dir/core: ");
	/* Turned off again: no core, no mention. */
	REQUIRE(mote_config_set_core_dump(cfg, NULL) == 0);
	mote_sandbox_free(sb);
	sb = new_sandbox(GUEST, cfg);
	REQUIRE(sb);
	CHECK_EQ_INT(call1(sb, "crash", 5, 0, 1, &r), -MOTE_EFAULT);
	CHECK(!strstr(mote_sandbox_last_error(sb), "core"));
	mote_sandbox_free(sb);
	mote_config_free(cfg);
}

/* A free TCP port on loopback (it could be taken again before use: the
 * test then fails with the stub's "cannot listen" detail, not silently). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

struct gdb_call {
	mote_sandbox *sb;
	const char *fn;
	int arg;
	int rc;
	mote_value result;
	char detail[1024];
};

static void *call_thread(void *arg)
{
	struct gdb_call *c = arg;
	mote_value a = mote_i32(c->arg);
	c->rc = mote_sandbox_call(c->sb, c->fn, &a, 1, &c->result);
	snprintf(c->detail, sizeof(c->detail), "%s", mote_sandbox_last_error(c->sb));
	return NULL;
}

/* Call `fn`(arg) under gdb running `cmds` after it connects; gdb's output. */
static char *gdb_session(mote_sandbox *sb, int port, const char *fn, int arg,
			 const char *const *cmds, size_t ncmds, struct gdb_call *call)
{
	*call = (struct gdb_call){.sb = sb, .fn = fn, .arg = arg};
	pthread_t t;
	if (pthread_create(&t, NULL, call_thread, call))
		return NULL;
	char target[64];
	snprintf(target, sizeof(target), "target remote 127.0.0.1:%d", port);
	const char *all[40] = {"set pagination off", "set confirm off",
			       "set tcp connect-timeout 60", target};
	size_t n = 4;
	for (size_t i = 0; i < ncmds && n < 39; i++)
		all[n++] = cmds[i];
	char *out = run_gdb(all, n);
	/* If gdb never connected, the call still waits for it: a connection
	 * that closes at once ends it (an error), so the test cannot hang. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && pthread_tryjoin_np(t, NULL) != 0)
		connect(fd, (struct sockaddr *)&a, sizeof(a));
	if (fd >= 0)
		close(fd);
	pthread_join(t, NULL);
	return out;
}

TEST(gdb_breaks_steps_and_reads)
{
	int port = free_port();
	REQUIRE(port > 0);
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	REQUIRE(mote_config_set_gdb_port(cfg, port) == 0);
	mote_sandbox *sb = new_sandbox(GUEST, cfg);
	REQUIRE(sb);
	char line[64];
	snprintf(line, sizeof(line), "guest.c:%d", source_line("SQUARE LINE"));
	const char *cmds[] = {"break square", "continue", "print x", "bt", "next", "step",
			      "print y", "print sink = 7", "print sink", "info registers rip",
			      "continue"};
	struct gdb_call call;
	char *out = gdb_session(sb, port, "work", 4, cmds, sizeof(cmds) / sizeof(cmds[0]), &call);
	REQUIRE(out);
	CHECK_CONTAINS(out, "Breakpoint 1 at 0x");
	CHECK_CONTAINS(out, "Breakpoint 1, square (x=x@entry=5) at ");
	CHECK_CONTAINS(out, line);
	CHECK_CONTAINS(out, "$1 = 5");
	CHECK_CONTAINS(out, "#0  square (x=x@entry=5) at ");
	CHECK_CONTAINS(out, " in work (x=4) at ");
	CHECK_CONTAINS(out, "\tsink = y;");   /* `next` went to the next line */
	CHECK_CONTAINS(out, "\treturn y;");   /* and `step` to the one after */
	CHECK_CONTAINS(out, "$2 = 25");       /* y is computed */
	CHECK_CONTAINS(out, "$3 = 7");    /* memory written */
	CHECK_CONTAINS(out, "$4 = 7");    /* and read back */
	CHECK_CONTAINS(out, "rip            0x");
	CHECK_CONTAINS(out, "exited normally");
	CHECK_EQ_INT(call.rc, 0);
	CHECK_EQ_INT(call.result.v.i32, 26); /* the call's result is unchanged */
	if (call.rc || !strstr(out, "exited normally"))
		TEST_FAILF("gdb said: %s\ncall: %s", out, call.detail);

	/* The sandbox goes on, still under gdb: a register gdb writes is the
	 * guest's. square returns 100 instead of 36; work adds 1. */
	const char *cmds2[] = {"break square", "continue", "finish", "set $rax = 100",
			       "continue"};
	out = gdb_session(sb, port, "work", 5, cmds2, sizeof(cmds2) / sizeof(cmds2[0]), &call);
	REQUIRE(out);
	CHECK_CONTAINS(out, "Value returned is $1 = 36");
	CHECK_EQ_INT(call.rc, 0);
	CHECK_EQ_INT(call.result.v.i32, 101);
	if (call.rc)
		TEST_FAILF("gdb said: %s\ncall: %s", out, call.detail);
	mote_sandbox_free(sb);
	mote_config_free(cfg);
}

TEST(gdb_sees_the_fault)
{
	int port = free_port();
	REQUIRE(port > 0);
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	REQUIRE(mote_config_set_gdb_port(cfg, port) == 0);
	/* From a snapshot file, to show that works the same. */
	mote_sandbox *sb = from_file(GUEST, tmp("gdb.snap"), cfg);
	REQUIRE(sb);
	const char *cmds[] = {"continue", "bt", "continue"};
	struct gdb_call call;
	char *out = gdb_session(sb, port, "crash", 5, cmds, sizeof(cmds) / sizeof(cmds[0]), &call);
	REQUIRE(out);
	CHECK_CONTAINS(out, "Program received signal SIGSEGV");
	CHECK_CONTAINS(out, "#0  store_through (p=p@entry=0x0, v=v@entry=15)");
	CHECK_CONTAINS(out, " in middle (");
	CHECK_CONTAINS(out, "Program terminated with signal SIGSEGV");
	CHECK_EQ_INT(call.rc, -MOTE_EFAULT);
	CHECK_CONTAINS(call.detail, "memory access violation: write at 0x0");
	CHECK_CONTAINS(call.detail, " in store_through (guest.c:");
	/* Killed from gdb: the call is cancelled (after a restore: the
	 * fault poisoned the sandbox). */
	mote_sandbox_free(sb);
	sb = new_sandbox(GUEST, cfg);
	REQUIRE(sb);
	const char *cmds2[] = {"kill"};
	out = gdb_session(sb, port, "work", 1, cmds2, 1, &call);
	REQUIRE(out);
	CHECK_EQ_INT(call.rc, -MOTE_ECANCELLED);
	CHECK_CONTAINS(call.detail, "call killed from gdb");
	mote_sandbox_free(sb);
	mote_config_free(cfg);
	unlink(tmp("gdb.snap"));
}

TEST(gdb_port_errors)
{
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	CHECK_EQ_INT(mote_config_set_gdb_port(NULL, 1234), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_last_error(), "mote_config_set_gdb_port: no config");
	CHECK_EQ_INT(mote_config_set_gdb_port(cfg, 70000), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_last_error(), "port 70000 out of range");
	/* A port taken by someone else: the call fails and says why. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 1) == 0 &&
		getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	REQUIRE(mote_config_set_gdb_port(cfg, ntohs(a.sin_port)) == 0);
	mote_sandbox *sb = new_sandbox(GUEST, cfg);
	REQUIRE(sb);
	mote_value r;
	CHECK_EQ_INT(call1(sb, "work", 1, 0, 1, &r), -MOTE_EIO);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "gdb stub: cannot listen on 127.0.0.1:");
	mote_sandbox_free(sb);
	close(fd);
	mote_config_free(cfg);
}

TEST(cleanup)
{
	CHECK(rmdir(tmp_dir) == 0 || errno == ENOENT);
}

TEST_MAIN()
