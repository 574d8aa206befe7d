// End to end: the real runsc launcher spawning the real gofer and sandbox processes, real
// programs (sh, ls, cat, tar, cp, find, sort, python3, gcc) running on the sandbox's FUSE
// view, and their effects checked on the host tree; then every failure the launcher must
// report (missing bundle, broken config.json, missing bind source, missing binary, a gofer
// killed mid-workload, SIGTERM), each with no process or mount point left behind.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Runfile(const std::string& rel) {
  const char* srcdir = getenv("TEST_SRCDIR");
  return std::string(srcdir ? srcdir : ".") + "/p9fs/" + rel;
}

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Spit(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary);
  out << data;
}

// Every regular file, symlink and directory below `root` with its content, target or
// mode: two equal snapshots mean an unchanged tree.
std::map<std::string, std::string> Snapshot(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    std::string rel = it->path().lexically_relative(root).string();
    struct stat st;
    lstat(it->path().c_str(), &st);
    std::string v = std::to_string(st.st_mode) + ":" + std::to_string(st.st_uid) + ":" +
                    std::to_string(st.st_mtim.tv_sec) + ":" + std::to_string(st.st_nlink) + ":";
    if (S_ISLNK(st.st_mode)) v += fs::read_symlink(it->path()).string();
    if (S_ISREG(st.st_mode)) v += Slurp(it->path());
    out[rel] = v;
  }
  return out;
}

struct Proc {
  pid_t pid = -1;
  int out = -1, err = -1;
};

struct Result {
  int code = -1;  // Exit code, 128+signal, or -1 on timeout.
  std::string out, err;
};

// Every process a test starts carries RUNSC_TEST_MARK=<mark> in its environment, and the
// gofer, sandbox and workload inherit it: leftovers are found by it.
Proc Start(const std::vector<std::string>& args, const std::string& mark = "") {
  int o[2], e[2];
  EXPECT_EQ(pipe2(o, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(e, O_CLOEXEC), 0);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(o[1], 1);
    dup2(e[1], 2);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    if (!mark.empty()) setenv("RUNSC_TEST_MARK", mark.c_str(), 1);
    execv(argv[0], argv.data());
    _exit(98);
  }
  close(o[1]);
  close(e[1]);
  return Proc{pid, o[0], e[0]};
}

Result Finish(Proc& p, int timeout_s = 120) {
  Result r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  pollfd fds[2] = {{p.out, POLLIN, 0}, {p.err, POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0 && std::chrono::steady_clock::now() < deadline) {
    if (poll(fds, 2, 200) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[65536];
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  int st = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(p.pid, &st, WNOHANG) == p.pid) {
      r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(p.pid, SIGKILL);
  waitpid(p.pid, &st, 0);
  r.code = -1;
  return r;
}

// Live processes started with RUNSC_TEST_MARK=`mark` (zombies aside: they hold nothing).
std::vector<pid_t> ProcessesWith(const std::string& mark) {
  std::vector<pid_t> out;
  std::string want = "RUNSC_TEST_MARK=" + mark;
  want.push_back('\0');
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string env = Slurp(e.path() / "environ");
    if (env.find(want) == std::string::npos) continue;
    std::string stat = Slurp(e.path() / "stat");
    size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') continue;
    out.push_back(std::stoi(name));
  }
  return out;
}

// The children of `pid` named `comm`.
std::vector<pid_t> ChildrenNamed(pid_t pid, const std::string& comm) {
  std::vector<pid_t> out;
  std::string kids = Slurp("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::stringstream ss(kids);
  pid_t c;
  while (ss >> c) {
    std::string n = Slurp("/proc/" + std::to_string(c) + "/comm");
    if (n.starts_with(comm)) out.push_back(c);
  }
  return out;
}

class RunscTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/runsc_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    in_ = dir_ / "in";
    out_ = dir_ / "out";
    fs::create_directories(in_ / "sub" / "deeper");
    fs::create_directories(out_);
    Spit(in_ / "hello.txt", "hello from the host\n");
    Spit(in_ / "sub" / "data.bin", std::string(300000, 'x') + "end");
    Spit(in_ / "sub" / "deeper" / "z", "z");
    fs::create_symlink("../hello.txt", in_ / "sub" / "link");
    fs::create_hard_link(in_ / "hello.txt", in_ / "hard.txt");
    chmod((in_ / "sub" / "deeper" / "z").c_str(), 0751);
    for (const auto& e : fs::directory_iterator("/tmp")) {
      tmp_before_.insert(e.path().filename().string());
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    // No mount point left by any launcher of this test. (Only new entries count: a launcher
    // killed outside the tests may have left one under a pid that was reused since.)
    for (const auto& e : fs::directory_iterator("/tmp")) {
      std::string name = e.path().filename().string();
      if (tmp_before_.contains(name)) continue;
      EXPECT_THAT(name, Not(HasSubstr("runsc.do-" + std::to_string(last_pid_))));
    }
  }

  std::vector<std::string> Runsc(std::vector<std::string> args) {
    std::vector<std::string> a = {Runfile("sentry/runsc/runsc"), "--gofer=" + Runfile("gofer/gofer"),
                                  "--sandbox=" + Runfile("sentry/sandbox/sandbox")};
    a.insert(a.end(), args.begin(), args.end());
    return a;
  }
  // runsc do with the test tree bound at /in (ro) and /out (rw).
  Result Do(const std::string& script, std::vector<std::string> flags = {}) {
    std::vector<std::string> a = {"do", "--bind=" + in_.string() + ":/in:ro", "--bind=" + out_.string() + ":/out"};
    a.insert(a.end(), flags.begin(), flags.end());
    a.insert(a.end(), {"--", "/bin/sh", "-c", script});
    std::vector<std::string> argv = wrap_;
    for (std::string& s : Runsc(a)) argv.push_back(std::move(s));
    Proc p = Start(argv, Mark());
    last_pid_ = p.pid;
    Result r = Finish(p);
    EXPECT_TRUE(ProcessesWith(Mark()).empty()) << "leftover processes";
    return r;
  }

  std::string Mark() const { return dir_.string(); }

  fs::path dir_, in_, out_;
  std::vector<std::string> wrap_;  // A command runsc runs under (e.g. prlimit).
  pid_t last_pid_ = 0;
  std::set<std::string> tmp_before_;  // /tmp entries before the test.
};

TEST_F(RunscTest, ShellWritesTmpAndListsABindMount) {
  Result r = Do("echo scratch > /tmp/x && cat /tmp/x && ls /in && cat /in/hello.txt");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "scratch\nhard.txt\nhello.txt\nsub\nhello from the host\n");
  EXPECT_FALSE(fs::exists("/tmp/x") && Slurp("/tmp/x") == "scratch\n");
}

TEST_F(RunscTest, LsOfTheRootAndProcAndDev) {
  Result r = Do("ls -la / && ls /proc/self/fd && echo pid=$$ && ls /dev && echo zero=$(head -c 3 /dev/zero | wc -c)");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(" usr\n"));
  EXPECT_THAT(r.out, HasSubstr(" etc\n"));
  EXPECT_THAT(r.out, HasSubstr("pid=2\n"));  // The workload is pid 2 in its own PID namespace.
  EXPECT_THAT(r.out, HasSubstr("urandom"));
  EXPECT_THAT(r.out, HasSubstr("zero=3"));
}

// A walk over more directories than the FUSE server keeps nodes for (10,000) makes it
// evict; the kernel's /proc and /dev, mounted over the view, must stay.
TEST_F(RunscTest, ProcAndDevSurviveNodeEviction) {
  for (int i = 0; i < 120; ++i) {
    for (int j = 0; j < 100; ++j) {
      fs::create_directories(in_ / "many" / ("d" + std::to_string(i)) / ("e" + std::to_string(j)));
    }
  }
  Result r = Do("find /in/many | wc -l && sleep 2 && echo x > /dev/null && "
                "readlink /proc/self/exe && test -c /dev/null && echo alive");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "12121\n/usr/bin/readlink\nalive\n") << r.err;
}

// Every kernel node and every listing sent ahead holds a host fd in the gofer; under a low
// open-file limit (1,024 soft and hard, as some hosts set it) the sandbox keeps fewer of
// both, so a walk over more directories than that still sees every one. (With the fixed
// 10,000 nodes and 2,048 listings it did not: "Too many open files".)
TEST_F(RunscTest, FindUnderALowOpenFileLimitSeesEverything) {
  if (access("/usr/bin/prlimit", X_OK) != 0) GTEST_SKIP() << "no prlimit (util-linux)";
  for (int i = 0; i < 60; ++i) {
    for (int j = 0; j < 100; ++j) {
      fs::create_directories(in_ / "many" / ("d" + std::to_string(i)) / ("e" + std::to_string(j)));
    }
  }
  wrap_ = {"/usr/bin/prlimit", "--nofile=1024:1024", "--"};
  Result r = Do("find /in/many | wc -l && find /in/many -type d | wc -l");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "6061\n6061\n") << r.err;
}

TEST_F(RunscTest, TarCreateAndExtract) {
  Result r = Do("tar cf /out/in.tar -C /in . && mkdir /tmp/x && tar xf /out/in.tar -C /tmp/x && "
                "diff -r /in /tmp/x && echo same");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "same\n");
  fs::create_directories(dir_ / "check");
  ASSERT_EQ(system(("tar xf " + (out_ / "in.tar").string() + " -C " + (dir_ / "check").string()).c_str()), 0);
  EXPECT_EQ(Snapshot(dir_ / "check").size(), Snapshot(in_).size());
  EXPECT_EQ(Slurp(dir_ / "check" / "sub" / "data.bin"), Slurp(in_ / "sub" / "data.bin"));
}

TEST_F(RunscTest, CpAPreservesModesLinksAndHardLinks) {
  Result r = Do("cp -a /in /out/copy");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(fs::read_symlink(out_ / "copy" / "sub" / "link"), "../hello.txt");
  struct stat a, b, z;
  ASSERT_EQ(stat((out_ / "copy" / "hello.txt").c_str(), &a), 0);
  ASSERT_EQ(stat((out_ / "copy" / "hard.txt").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "cp -a keeps hard links: st_ino through FUSE must show them";
  ASSERT_EQ(stat((out_ / "copy" / "sub" / "deeper" / "z").c_str(), &z), 0);
  EXPECT_EQ(z.st_mode & 07777, 0751u);
  EXPECT_EQ(Slurp(out_ / "copy" / "sub" / "data.bin"), Slurp(in_ / "sub" / "data.bin"));
}

TEST_F(RunscTest, FindListsWhatTheHostHas) {
  Result r = Do("cd /in && find . | sort");
  EXPECT_EQ(r.code, 0) << r.err;
  std::string expect = ".\n";
  std::vector<std::string> names;
  for (const auto& [rel, v] : Snapshot(in_)) names.push_back("./" + rel);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) expect += n + "\n";
  EXPECT_EQ(r.out, expect);
}

TEST_F(RunscTest, SortOfALargeFile) {
  Result r = Do("seq 1 300000 | shuf > /tmp/big && sort -n /tmp/big > /out/sorted && "
                "seq 1 300000 | cmp - /out/sorted && echo ok");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
  EXPECT_EQ(fs::file_size(out_ / "sorted"), fs::file_size(out_ / "sorted"));
  std::ifstream in(out_ / "sorted");
  std::string first;
  in >> first;
  EXPECT_EQ(first, "1");
}

// The sandbox's /tmp keeps file bytes in memfds that the kernel reads and writes itself:
// programs built there run from there, a shared mapping that outlives its fd is the file,
// and a large file is whole.
TEST_F(RunscTest, TmpFilesRunMapAndHoldLikeAHostTmpfs) {
  Result r = Do(
      "cd /tmp && printf '#include <stdio.h>\\nint main(void) { puts(\"run from tmp\"); }\\n' > p.c && "
      "gcc -o p p.c && ./p && "
      "python3 -c 'import mmap, os\n"
      "fd = os.open(\"/tmp/m\", os.O_RDWR | os.O_CREAT, 0o644)\n"
      "os.ftruncate(fd, 8192)\n"
      "m = mmap.mmap(fd, 8192)\n"
      "os.close(fd)\n"
      "m[4096:4101] = b\"hello\"\n"
      "print(open(\"/tmp/m\", \"rb\").read()[4096:4101].decode())' && "
      "head -c 67108864 /dev/zero | tr '\\0' a > /tmp/big && wc -c < /tmp/big && "
      "tr -d a < /tmp/big | wc -c");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "run from tmp\nhello\n67108864\n0\n");
}

TEST_F(RunscTest, Python3WritesAndReadsFiles) {
  Result r = Do(
      "python3 -c 'import os, hashlib\n"
      "data = bytes(range(256)) * 4000\n"
      "open(\"/out/py.bin\", \"wb\").write(data)\n"
      "open(\"/tmp/py.bin\", \"wb\").write(data)\n"
      "assert open(\"/tmp/py.bin\", \"rb\").read() == data\n"
      "print(hashlib.sha256(open(\"/out/py.bin\", \"rb\").read()).hexdigest())\n"
      "print(sorted(os.listdir(\"/in\")))'");
  EXPECT_EQ(r.code, 0) << r.err;
  std::string data;
  for (int i = 0; i < 4000; ++i) {
    for (int b = 0; b < 256; ++b) data.push_back(static_cast<char>(b));
  }
  EXPECT_EQ(Slurp(out_ / "py.bin"), data);
  EXPECT_THAT(r.out, HasSubstr("['hard.txt', 'hello.txt', 'sub']"));
}

TEST_F(RunscTest, GccCompilesIntoABindMount) {
  Spit(out_ / "prog.c", "#include <stdio.h>\nint main(void) { puts(\"built in the sandbox\"); return 0; }\n");
  Result r = Do("cd /out && gcc -O2 -o prog prog.c && ./prog");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "built in the sandbox\n");
  Proc p = Start({(out_ / "prog").string()});
  Result host = Finish(p);
  EXPECT_EQ(host.out, "built in the sandbox\n");
}

TEST_F(RunscTest, OverlayLeavesTheHostByteIdentical) {
  fs::copy(in_, out_ / "tree", fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  auto in_before = Snapshot(in_);
  auto out_before = Snapshot(out_);
  Result r = Do(
      "set -e; echo new > /out/new; rm -r /out/tree/sub; echo changed > /out/tree/hello.txt; "
      "chmod 600 /out/tree/hard.txt; mv /out/tree/hello.txt /out/tree/moved; "
      "mkdir -p /usr/share/runsc-overlay-test; echo x > /etc/runsc-overlay-test; "
      "cat /out/tree/moved /etc/runsc-overlay-test; ls /out/tree; "
      "if echo y > /in/hello.txt; then exit 9; fi",
      {"--overlay"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "changed\nx\nhard.txt\nmoved\n");
  EXPECT_THAT(r.err, HasSubstr("Read-only file system"));  // A read-only bind stays so.
  EXPECT_EQ(Snapshot(in_), in_before);
  EXPECT_EQ(Snapshot(out_), out_before);
  EXPECT_FALSE(fs::exists("/etc/runsc-overlay-test"));
  EXPECT_FALSE(fs::exists("/usr/share/runsc-overlay-test"));
}

TEST_F(RunscTest, RwBindChangesTheHostRoBindAndRootRefuse) {
  Result r = Do("echo written > /out/w && mkdir /out/d && mv /out/w /out/d/w2 && "
                "if echo x > /in/nope; then exit 10; fi && if touch /etc/nope; then exit 11; fi && "
                "if rm /in/hello.txt; then exit 12; fi && echo refused");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "refused\n");
  EXPECT_THAT(r.err, HasSubstr("Read-only file system"));
  EXPECT_EQ(Slurp(out_ / "d" / "w2"), "written\n");
  EXPECT_FALSE(fs::exists(in_ / "nope"));
  EXPECT_TRUE(fs::exists(in_ / "hello.txt"));
}

// A full disk on the host reaches the workload as ENOSPC: at write(2) when the data goes
// straight to the host, at the latest at close(2) when the sandbox held it (write-back).
TEST_F(RunscTest, FullHostDiskIsEnospc) {
  // A 64 KiB tmpfs over /out, in a mount namespace of this test process's own (the launcher
  // and its gofer inherit it; the host's mounts are untouched).
  ASSERT_EQ(unshare(CLONE_NEWNS), 0) << strerror(errno);
  ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
  ASSERT_EQ(mount("tmpfs", out_.c_str(), "tmpfs", 0, "size=64k"), 0) << strerror(errno);
  Result r = Do("dd if=/dev/zero of=/out/big bs=4k count=100; echo dd=$?; "
                "echo small > /out/small && cat /out/small");
  EXPECT_THAT(r.err, HasSubstr("No space left on device"));
  EXPECT_THAT(r.out, HasSubstr("dd=1"));
  EXPECT_LE(fs::file_size(out_ / "big"), 64u * 1024);
  umount2(out_.c_str(), MNT_DETACH);
}

TEST_F(RunscTest, ExitCodesPassThrough) {
  EXPECT_EQ(Do("exit 7").code, 7);
  EXPECT_EQ(Do("kill -9 $$").code, 137);
  Result r = Do("exec /no/such/binary");
  EXPECT_EQ(r.code, 127);
}

TEST_F(RunscTest, SharedAccessSeesHostChangesDirectAccessWorks) {
  Spit(out_ / "f", "v1");
  Proc p = Start(Runsc({"do", "--file-access=shared", "--bind=" + out_.string() + ":/out", "--",
                        "/bin/sh", "-c",
                        "cat /out/f; echo; touch /out/ready; i=0; "
                        "while ! grep -q v2 /out/f; do i=$((i+1)); [ $i -gt 400 ] && exit 3; sleep 0.05; done; "
                        "echo saw v2; ls /out"}));
  for (int i = 0; i < 400 && !fs::exists(out_ / "ready"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Spit(out_ / "f", "v2");
  Spit(out_ / "born-on-host", "");
  Result r = Finish(p);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("v1\nsaw v2\n"));
  EXPECT_THAT(r.out, HasSubstr("born-on-host"));

  Result d = Do("cat /in/hello.txt && echo direct > /out/direct", {"--file-access=direct"});
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.out, "hello from the host\n");
  EXPECT_EQ(Slurp(out_ / "direct"), "direct\n");
}

TEST_F(RunscTest, RunsABundle) {
  fs::path bundle = dir_ / "bundle";
  fs::create_directories(bundle);
  Spit(bundle / "config.json", R"({
    "ociVersion": "1.0.2",
    "process": {"args": ["sh", "-c", "echo in bundle; hostname; cat /data/hello.txt; pwd"],
                "env": ["PATH=/usr/bin:/bin"], "cwd": "/data", "user": {"uid": 0, "gid": 0}},
    "root": {"path": "/", "readonly": true},
    "hostname": "bundled",
    "mounts": [{"destination": "/data", "type": "bind", "source": ")" + in_.string() + R"(",
                "options": ["rbind", "ro"]},
               {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"}],
    "linux": {"namespaces": [{"type": "pid"}]}
  })");
  Proc p = Start(Runsc({"run", "--bundle=" + bundle.string(), "bundle-test"}));
  Result r = Finish(p);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "in bundle\nbundled\nhello from the host\n/data\n");
}

TEST_F(RunscTest, BadInputIsAOneLineErrorAndNothingIsLeft) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
    int code;
  };
  fs::create_directories(dir_ / "broken");
  Spit(dir_ / "broken" / "config.json", "{\"process\": {\"args\": [\"sh\"]}, \"root\": ");
  fs::create_directories(dir_ / "noroot");
  Spit(dir_ / "noroot" / "config.json", R"({"process": {"args": ["sh"]}, "root": {"path": "/no/such/root"}})");
  std::vector<Case> cases = {
      {{"run", "--bundle=" + (dir_ / "missing").string(), "x"}, "config.json", 125},
      {{"run", "--bundle=" + (dir_ / "broken").string(), "x"}, "config.json", 125},
      {{"run", "--bundle=" + (dir_ / "noroot").string(), "x"}, "/no/such/root", 125},
      {{"do", "--bind=/no/such/dir:/x", "--", "true"}, "/no/such/dir", 125},
      {{"do", "--bind=relative", "--", "true"}, "--bind", 125},
      {{"do", "--", "no-such-command-anywhere"}, "not found", 127},
      {{"do", "--file-access=bogus", "--", "true"}, "--file-access", 125},
      {{"frobnicate"}, "unknown command", 125},
  };
  for (const auto& c : cases) {
    Proc p = Start(Runsc(c.args), Mark());
    Result r = Finish(p, 30);
    EXPECT_EQ(r.code, c.code) << c.args[0] << " " << c.args[1] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << c.args[1];
    // Said by the launcher or, for what only the sandbox can see (PATH inside it), by it.
    EXPECT_TRUE(r.err.starts_with("runsc: ") || r.err.starts_with("sandbox: ")) << r.err;
    // One line (usage text aside, which follows the error line).
    EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 3) << r.err;
    EXPECT_TRUE(ProcessesWith(Mark()).empty()) << c.args[1];
  }
}

TEST_F(RunscTest, GoferKilledMidWorkloadGivesEioAndANonZeroExit) {
  Proc p = Start(Runsc({"do", "--bind=" + out_.string() + ":/out", "--", "/bin/sh", "-c",
                        "i=0; while echo $i > /out/f$i; do i=$((i+1)); sleep 0.01; done; "
                        "echo stopped at $i >&2; exit 3"}),
                 Mark());
  for (int i = 0; i < 400 && !fs::exists(out_ / "f20"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  std::vector<pid_t> gofers = ChildrenNamed(p.pid, "gofer");
  ASSERT_EQ(gofers.size(), 1u);
  ASSERT_EQ(kill(gofers[0], SIGKILL), 0);
  auto t0 = std::chrono::steady_clock::now();
  Result r = Finish(p, 60);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20)) << "no hang";
  EXPECT_EQ(r.code, 125) << r.err;
  EXPECT_THAT(r.err, HasSubstr("Input/output error"));
  EXPECT_THAT(r.err, HasSubstr("stopped at"));
  EXPECT_THAT(r.err, HasSubstr("runsc: the gofer was killed by SIGKILL"));
  EXPECT_TRUE(ProcessesWith(Mark()).empty());
}

TEST_F(RunscTest, SigtermTearsEverythingDown) {
  Proc p = Start(Runsc({"do", "--", "/bin/sh", "-c", "touch /tmp/started; sleep 1000"}), Mark());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // The launcher, the gofer, the sandbox, its init and the workload.
  EXPECT_GE(ProcessesWith(Mark()).size(), 5u);
  ASSERT_EQ(kill(p.pid, SIGTERM), 0);
  auto t0 = std::chrono::steady_clock::now();
  Result r = Finish(p, 30);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(r.code, 128 + SIGTERM);
  EXPECT_TRUE(ProcessesWith(Mark()).empty());
  last_pid_ = p.pid;
}

}  // namespace
