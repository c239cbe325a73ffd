// Root templates: the steps of a job's root that are the same for every job of a policy, mounted
// once in the spawner's own mount namespace and cloned by each job's init with one open_tree call.
//
// Why a path in the spawner's namespace, and not a detached tree (an open_tree or fsmount fd): a
// job's init clones its template after CLONE_NEWNS, and Linux 6.1 (Debian 12) clones only mounts
// of the caller's own namespace (check_mnt in __do_loopback; later kernels relaxed this for
// detached trees). A template mounted at <jobs_dir>/.templates/<n> is in the namespace every job's
// CLONE_NEWNS copies, so the init finds it at the same path and may clone it on every kernel.
// The spawner's namespace is its own (enterSpawnerMountNamespace), so the templates never appear
// on the host and never outlive the spawner. Each job's copy holds them only until its pivot_root
// detaches the old root; the directory is root's, mode 0700, and no job process exists before then.
#include "sandbox/root_template.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "sandbox/contain.h"
#include "sandbox/job_root.h"
#include "sandbox/workdir.h"

namespace pyrun::sandbox {
namespace {

Error templateError(const std::string& what, int error) {
  return Error(Errc::kSandbox, what + ": " + std::strerror(error));
}

// Makes the tmpfs mounted at path read-only at the superblock (fspick + fsconfig, Linux 5.2):
// every mount of it, the jobs' clones included, is then read-only whatever its own flags say,
// and the mount's own flags (which the job's view shows) stay as a root built step by step has
// them. mount(2)'s MS_REMOUNT would change both.
int sealSuperblock(const std::string& path) {
  int fd =
      static_cast<int>(::syscall(SYS_fspick, AT_FDCWD, path.c_str(),
                                 FSPICK_CLOEXEC | FSPICK_NO_AUTOMOUNT | FSPICK_SYMLINK_NOFOLLOW));
  if (fd < 0) return errno;
  int err = 0;
  if (::syscall(SYS_fsconfig, fd, FSCONFIG_SET_FLAG, "ro", nullptr, 0) != 0 ||
      ::syscall(SYS_fsconfig, fd, FSCONFIG_CMD_RECONFIGURE, nullptr, nullptr, 0) != 0) {
    err = errno;
  }
  ::close(fd);
  return err;
}

}  // namespace

Result<void> enterSpawnerMountNamespace() {
  if (::unshare(CLONE_NEWNS) != 0) {
    return templateError("give the spawner a mount namespace of its own (unshare)", errno);
  }
  // Slave, not private: a mount the host adds later (below /usr, say) still reaches us, and so
  // the templates built after it; nothing of ours reaches the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
    return templateError("make the spawner's mount namespace a slave of the host's", errno);
  }
  return {};
}

Result<void> RootTemplates::open(int jobs_dir_fd, const std::string& jobs_dir) {
  dir_ = jobs_dir + "/" + kTemplatesDir;
  // Whatever is left there (the spawner removes an earlier run's at start) holds no mount of ours
  // yet: the templates of an earlier spawner were mounted in its own namespace, gone with it.
  if (auto r = removeTree(jobs_dir_fd, kTemplatesDir); !r) return r.error();
  if (::mkdirat(jobs_dir_fd, kTemplatesDir, 0700) != 0 && errno != EEXIST) {
    return errnoError("create " + dir_, errno);
  }
  dir_fd_.reset(
      ::openat(jobs_dir_fd, kTemplatesDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir_fd_) return errnoError("open " + dir_, errno);
  // Root's alone: the jobs directory is searchable by the job uids (their working directories).
  if (::fchown(dir_fd_.get(), 0, 0) != 0 || ::fchmod(dir_fd_.get(), 0700) != 0) {
    return errnoError("make " + dir_ + " root's, mode 0700", errno);
  }
  mountinfo_.reset(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
  if (!mountinfo_) return errnoError("open /proc/self/mountinfo", errno);
  mountsChanged();
  return {};
}

bool RootTemplates::mountsChanged() {
  if (!mountinfo_) return true;
  pollfd p{mountinfo_.get(), POLLPRI, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLPRI | POLLERR)) != 0;
}

bool RootTemplates::stale(const Template& t) const {
  for (const Source& s : t.sources) {
    struct stat st {};
    bool there = ::stat(s.path.c_str(), &st) == 0;
    if (!there && s.dev == 0 && s.ino == 0) continue;
    if (!there || st.st_dev != s.dev || st.st_ino != s.ino) return true;
  }
  return false;
}

// How long an unmounted template's directory stays: a job's init clones its template right after
// its clone(2), in well under a second even on a loaded host.
constexpr auto kRetiredGrace = std::chrono::seconds(60);

RootTemplates::~RootTemplates() {
  clear();
  removeRetired(true);
}

void RootTemplates::unmount(const std::string& name) {
  const std::string path = dir_ + "/" + name;
  // The whole tree at once; jobs that cloned it keep their clones.
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    PYRUN_PLOG(kWarning) << "unmount the root template " << path;
  }
  // The directory stays for a while: removing a directory that is a mount point in other mount
  // namespaces detaches the mounts there (Linux 3.18+), and a job's init cloned a moment ago may
  // not yet have cloned the template from its copy of our namespace.
  retired_.push_back({name, std::chrono::steady_clock::now() + kRetiredGrace});
}

void RootTemplates::removeRetired(bool all) {
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(retired_, [&](const Retired& r) {
    if (!all && r.removable > now) return false;
    if (dir_fd_ && ::unlinkat(dir_fd_.get(), r.name.c_str(), AT_REMOVEDIR) != 0) {
      PYRUN_PLOG(kWarning) << "remove the root template's mount point " << dir_ << "/" << r.name;
    }
    return true;
  });
}

void RootTemplates::clear() {
  for (const auto& [key, t] : templates_) unmount(t.name);
  templates_.clear();
  mountsChanged();  // our own unmounts, not the host's
}

Result<RootTemplates::Template> RootTemplates::build(const policy::Policy& policy,
                                                     const void* identity, bool terminal) {
  auto plan = planRootTemplate(policy, {.terminal = terminal});
  if (!plan) return plan.error();
  Template t;
  t.name = std::to_string(next_++);
  t.identity = identity;
  const std::string path = dir_ + "/" + t.name;
  const std::string what = "the root template of policy " + policy.name + " at " + path;
  if (::mkdirat(dir_fd_.get(), t.name.c_str(), 0700) != 0) {
    return templateError("create the mount point of " + what, errno);
  }
  // The same tmpfs a root built step by step gets.
  if (::mount("tmpfs", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") != 0) {
    int err = errno;
    ::unlinkat(dir_fd_.get(), t.name.c_str(), AT_REMOVEDIR);
    return templateError("mount the tmpfs of " + what, err);
  }
  auto fail = [&](const std::string& step, int err) -> Error {
    unmount(t.name);
    return templateError(what + ": " + step, err);
  };
  std::vector<ChildMount> mounts;
  for (const auto& m : plan->steps) {
    mounts.push_back({m.kind, m.source.c_str(), m.target.c_str(), m.data.c_str(), m.mode,
                      m.writable, m.noexec, m.optional});
    if ((m.kind == MountKind::kBind || m.kind == MountKind::kDeviceBind) && !m.source.empty() &&
        m.source[0] == '/') {
      // Recorded before the bind: a file replaced in between makes the template stale at once.
      struct stat st {};
      Source s{m.source};
      if (::stat(m.source.c_str(), &st) == 0) {
        s.dev = st.st_dev;
        s.ino = st.st_ino;
      }
      t.sources.push_back(std::move(s));
    }
  }
  // The steps run from the template's top, as a job's init runs them from its root's: the spawner
  // is single-threaded, so its working directory may move for the while.
  UniqueFd cwd(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (::chdir(path.c_str()) != 0) return fail("enter it", errno);
  size_t failed = 0;
  int err = runTemplateSteps(mounts.data(), mounts.size(), &failed);
  if ((cwd ? ::fchdir(cwd.get()) : ::chdir("/")) != 0) {
    PYRUN_PLOG(kWarning) << "return to the spawner's working directory";
  }
  if (err != 0) return fail(describeMountStep(plan->steps[failed]), err);
  // Private: a mount the host adds below a bound directory later must not appear in the template
  // with its own (writable, suid) flags; the host's later mounts reach jobs through a rebuild.
  if (::mount(nullptr, path.c_str(), nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return fail("make it private", errno);
  }
  // Last: the tmpfs's of the template (its top and /dev) become read-only at the superblock, which
  // every job's clone shares. A job that somehow gained the right to remount its own clone
  // writable could still not write into another job's root.
  if (int e = sealSuperblock(path); e != 0) return fail("make its tmpfs read-only", e);
  for (const auto& m : plan->steps) {
    if (m.kind != MountKind::kTmpfs) continue;
    if (int e = sealSuperblock(path + "/" + m.target); e != 0) {
      return fail("make its tmpfs /" + m.target + " read-only", e);
    }
  }
  return t;
}

Result<std::string> RootTemplates::get(const policy::Policy& policy, const void* identity,
                                       bool terminal) {
  if (!dir_fd_) return Error(Errc::kInternal, "the root templates are not set up");
  removeRetired(false);
  if (mountsChanged() && !templates_.empty()) {
    PYRUN_LOG(kInfo) << "the spawner's mount table changed: rebuilding the root templates";
    clear();
  }
  const auto key = std::make_pair(policy.name, terminal);
  auto it = templates_.find(key);
  if (it != templates_.end() && (it->second.identity != identity || stale(it->second))) {
    unmount(it->second.name);
    templates_.erase(it);
    it = templates_.end();
  }
  if (it == templates_.end()) {
    auto built = build(policy, identity, terminal);
    mountsChanged();  // our own mounts, not the host's
    if (!built) return built.error();
    PYRUN_LOG(kDebug) << "built the root template of policy " << policy.name
                      << (terminal ? " (terminal)" : "") << " at " << dir_ << "/" << built->name;
    it = templates_.emplace(key, std::move(*built)).first;
  }
  return dir_ + "/" + it->second.name;
}

}  // namespace pyrun::sandbox
