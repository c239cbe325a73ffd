// Test PKI: every call runs the real pyrun-ca, so tests exercise the same files users get.
#include "support/pki.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

namespace pyrun::test {
namespace {

std::string describe(const std::vector<std::string>& args) {
  std::string s = "pyrun-ca";
  for (const auto& a : args) s += " " + a;
  return s;
}

}  // namespace

Pki::Pki(const std::string& dir) : dir_(dir) {
  std::vector<std::string> argv = {binary("pyrun-ca"), "init",         "--dir", caDir(),
                                   "--name",           "pyrun test CA"};
  Outcome o = run(argv);
  if (o.exit_code != 0) {
    ADD_FAILURE() << "pyrun-ca init --dir " << caDir() << " failed (exit " << o.exit_code
                  << "): " << o.err;
    std::fprintf(stderr, "pyrun-ca init failed: %s\n", o.err.c_str());
    std::abort();
  }
}

std::string Pki::caDir() const { return dir_ + "/ca"; }
std::string Pki::caCert() const { return caDir() + "/ca.pem"; }
std::string Pki::crl() const { return caDir() + "/crl.pem"; }

Outcome Pki::ca(std::vector<std::string> args) const {
  std::vector<std::string> argv = {binary("pyrun-ca")};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--dir");
  argv.push_back(caDir());
  return run(argv);
}

void Pki::caOrDie(const std::vector<std::string>& args) const {
  Outcome o = ca(args);
  if (o.exit_code != 0) {
    ADD_FAILURE() << describe(args) << " failed (exit " << o.exit_code << "): " << o.err;
    std::fprintf(stderr, "%s failed: %s\n", describe(args).c_str(), o.err.c_str());
    std::abort();
  }
}

std::string Pki::serverBundle() {
  if (server_bundle_.empty()) {
    std::string out = dir_ + "/server.pem";
    caOrDie({"server", "localhost", "127.0.0.1", "::1", "--out", out});
    server_bundle_ = out;
  }
  return server_bundle_;
}

std::string Pki::clientBundle(const std::string& name, const std::vector<std::string>& extra) {
  std::string out = dir_ + "/" + name + ".pem";
  std::vector<std::string> args = {"client", name, "--out", out};
  args.insert(args.end(), extra.begin(), extra.end());
  caOrDie(args);
  return out;
}

void Pki::revoke(const std::string& name) { caOrDie({"revoke", name}); }

}  // namespace pyrun::test
