// A test PKI made by the real pyrun-ca in a test's directory (no key or certificate is committed).
#pragma once

#include <string>
#include <vector>

#include "support/process.h"

namespace pyrun::test {

// A PKI made by the real pyrun-ca in a test's directory. Constructor and methods abort the test
// (ADD_FAILURE + std::abort, printing pyrun-ca's stderr) when pyrun-ca fails.
// Targets whose tests use it must depend on pyrun-ca: add_dependencies(<test> pyrun-ca).
class Pki {
 public:
  explicit Pki(const std::string& dir);  // pyrun-ca init --dir <dir>/ca --name "pyrun test CA"
  std::string caDir() const;             // <dir>/ca
  std::string caCert() const;            // <dir>/ca/ca.pem
  std::string crl() const;               // <dir>/ca/crl.pem
  // pyrun-ca server localhost 127.0.0.1 ::1 --out <dir>/server.pem (made once; later calls return
  // the path)
  std::string serverBundle();
  // pyrun-ca client NAME --out <dir>/NAME.pem [extra...]; returns the bundle path
  std::string clientBundle(const std::string& name, const std::vector<std::string>& extra = {});
  void revoke(const std::string& name);  // pyrun-ca revoke NAME
  // Runs pyrun-ca with the arguments plus --dir caDir(); returns the outcome (for failure tests).
  Outcome ca(std::vector<std::string> args) const;

 private:
  // Runs ca(args) and aborts the test binary, printing what pyrun-ca said, when it fails.
  void caOrDie(const std::vector<std::string>& args) const;

  std::string dir_;
  std::string server_bundle_;
};

}  // namespace pyrun::test
