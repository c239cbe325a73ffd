// Dropping root in the network front.
#include "server/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace pyrun::server {

bool runningAsRoot() {
  uid_t r = 0, e = 0, s = 0;
  if (getresuid(&r, &e, &s) != 0) return geteuid() == 0;
  return r == 0 || e == 0 || s == 0;
}

Result<void> dropPrivileges(const std::string& user) {
  if (!runningAsRoot()) return {};
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc = getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) return errnoError("looking up user \"" + user + "\"", rc);
  if (found == nullptr) {
    return Error(Errc::kNotFound, "user \"" + user + "\" does not exist (see --user)");
  }
  const uid_t uid = pw.pw_uid;
  const gid_t gid = pw.pw_gid;
  if (uid == 0 || gid == 0) {
    return Error(Errc::kPermission, "user \"" + user +
                                        "\" has uid or gid 0; the network front "
                                        "must run unprivileged (see --user)");
  }
  // Groups first: once the uid is dropped, setgroups() is no longer allowed, and a leftover
  // supplementary group (root's gid 0) would keep access we meant to give up.
  if (setgroups(1, &gid) != 0) return errnoError("setgroups", errno);
  if (setresgid(gid, gid, gid) != 0) return errnoError("setresgid", errno);
  if (setresuid(uid, uid, uid) != 0) return errnoError("setresuid", errno);

  uid_t ru = 0, eu = 0, su = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0) {
    return errnoError("getresuid", errno);
  }
  if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid) {
    return Error(Errc::kPermission, "privilege drop to \"" + user + "\" did not take effect");
  }
  // A working setuid(0) now would mean root could be regained (e.g. through a kept capability).
  if (setuid(0) == 0) {
    return Error(Errc::kPermission,
                 "privilege drop to \"" + user + "\" can be undone; refusing to run");
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errnoError("PR_SET_NO_NEW_PRIVS", errno);
  return {};
}

}  // namespace pyrun::server
