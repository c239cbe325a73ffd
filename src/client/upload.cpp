// Planning of the files pyrun sends (see upload.h).
#include "client/upload.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "client/exit_status.h"
#include "client/stdio.h"
#include "common/dir.h"
#include "common/fd.h"
#include "common/file.h"
#include "proto/messages.h"

namespace pyrun::client {
namespace {

Error invalid(std::string detail) { return Error(Errc::kInvalidArgument, std::move(detail)); }

std::string dirName(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string baseName(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The entries of a directory, sorted (the order files go in does not depend on the disk's).
Result<std::vector<std::string>> listDir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errnoError("cannot read directory " + path, errno);
  return listNames(fd.get(), path);
}

bool isPy(const std::string& name) { return name.size() > 3 && name.ends_with(".py"); }

class Planner {
 public:
  explicit Planner(const Options& o) : options_(o), script_name_(baseName(o.script)) {}

  Result<void> add(UploadEntry e) {
    if (auto ok = proto::validateFileName(e.name, e.mode); !ok) {
      return invalid(e.local + ": " + ok.error().detail());
    }
    if (e.name == script_name_) {
      return invalid(e.local + " would be sent as " + e.name + ", the script's own name");
    }
    if (auto ok = names_.add(e.name); !ok) return invalid(e.local + ": " + ok.error().detail());
    plan_.bytes += e.size;
    plan_.entries.push_back(std::move(e));
    return {};
  }

  // -f PATH[:DEST]
  Result<void> addArg(const FileArg& f) {
    struct stat st {};
    if (::stat(f.path.c_str(), &st) != 0) return errnoError("cannot send " + f.path, errno);
    if (S_ISREG(st.st_mode)) {
      return add({f.path, f.dest, static_cast<uint32_t>(st.st_mode & 0777),
                  static_cast<uint64_t>(st.st_size), true, false});
    }
    if (!S_ISDIR(st.st_mode)) {
      return invalid("cannot send " + f.path + ": neither a regular file nor a directory");
    }
    return addTree(f.path, f.dest);
  }

  // Everything below a -f directory but symlinks and special files (never followed).
  Result<void> addTree(const std::string& dir, const std::string& dest) {
    auto names = listDir(dir);
    if (!names) return names.error();
    for (const auto& n : *names) {
      const std::string local = dir + "/" + n;
      struct stat st {};
      if (::lstat(local.c_str(), &st) != 0) return errnoError("cannot send " + local, errno);
      if (S_ISREG(st.st_mode)) {
        if (auto r = add({local, dest + "/" + n, static_cast<uint32_t>(st.st_mode & 0777),
                          static_cast<uint64_t>(st.st_size), false, false});
            !r) {
          return r;
        }
      } else if (S_ISDIR(st.st_mode)) {
        if (auto r = addTree(local, dest + "/" + n); !r) return r;
      } else if (options_.verbose) {
        printLine("not sending " + local + ": not a regular file or directory");
      }
    }
    return {};
  }

  // The modules beside the script: `rel` is "" for the script's directory, else a package.
  Result<void> addModules(const std::string& dir, const std::string& rel) {
    auto names = listDir(dir);
    if (!names) return names.error();
    for (const auto& n : *names) {
      if (n.front() == '.' || n == "__pycache__") continue;
      const std::string local = dir + "/" + n;
      const std::string name = rel.empty() ? n : rel + "/" + n;
      struct stat st {};
      if (::lstat(local.c_str(), &st) != 0) continue;  // gone meanwhile: nothing to import
      if (S_ISREG(st.st_mode) && isPy(n)) {
        if (rel.empty() && n == script_name_) continue;
        if (names_.contains(name)) continue;  // -f sends it already
        ++module_files_;
        module_bytes_ += static_cast<uint64_t>(st.st_size);
        if (auto r = checkModuleBounds(); !r) return r;
        if (auto r = add({local, name, static_cast<uint32_t>(st.st_mode & 0777),
                          static_cast<uint64_t>(st.st_size), false, true});
            !r) {
          return r;
        }
      } else if (S_ISDIR(st.st_mode)) {
        struct stat init {};
        const std::string init_path = local + "/__init__.py";
        if (::lstat(init_path.c_str(), &init) != 0 || !S_ISREG(init.st_mode)) continue;
        if (auto r = addModules(local, name); !r) return r;
      }
    }
    return {};
  }

  Result<void> checkModuleBounds() const {
    if (module_files_ > kMaxModuleFiles || module_bytes_ > kMaxModuleBytes) {
      return invalid("the directory of " + options_.script + " (" + dirName(options_.script) +
                     ") holds more than " + std::to_string(kMaxModuleFiles) +
                     " importable files or " + formatBytes(kMaxModuleBytes) +
                     " of them, pyrun's bound for sending them by default; give --no-modules "
                     "and send what the program needs with -f");
    }
    return {};
  }

  UploadPlan take() { return std::move(plan_); }

 private:
  const Options& options_;
  std::string script_name_;
  proto::FileNameSet names_;
  UploadPlan plan_;
  size_t module_files_ = 0;
  uint64_t module_bytes_ = 0;
};

}  // namespace

Result<UploadPlan> planUpload(const Options& options) {
  Planner planner(options);
  for (const auto& f : options.files) {
    if (auto r = planner.addArg(f); !r) return r.error();
  }
  if (options.modules) {
    if (auto r = planner.addModules(dirName(options.script), ""); !r) return r.error();
  }
  return planner.take();
}

}  // namespace pyrun::client
