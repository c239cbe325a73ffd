// Admission caps without I/O: connections and TLS handshakes before authentication (the idea of
// sshd's MaxStartups: refuse floods before any crypto), and per-identity job quotas after it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "common/error.h"

namespace pyrun::server {

class ConnectionGate {
 public:
  enum class Refusal { kNone, kConnections, kHandshakes, kSourceHandshakes };

  ConnectionGate(uint32_t max_connections, uint32_t max_handshakes, uint32_t max_per_source);

  // A TCP connection from `source` (an address without port) was accepted. kNone: it is counted as
  // a connection and a handshake in progress; otherwise nothing is counted and the caller must
  // close it at once.
  Refusal admit(const std::string& source);
  // The handshake of an admitted connection ended (success, failure or deadline).
  void handshakeEnded(const std::string& source);
  // An admitted connection closed (after handshakeEnded, or instead of it: both are idempotent per
  // connection only if the caller calls each once).
  void connectionClosed();

  uint32_t connections() const noexcept { return connections_; }
  uint32_t handshakes() const noexcept { return handshakes_; }
  uint32_t handshakesFrom(const std::string& source) const;

  // "too many TLS handshakes in progress from 127.0.0.1 (8)" for logs.
  std::string describe(Refusal refusal, const std::string& source) const;

 private:
  uint32_t max_connections_, max_handshakes_, max_per_source_;
  uint32_t connections_ = 0;
  uint32_t handshakes_ = 0;
  std::map<std::string, uint32_t> per_source_;
};

class IdentityQuota {
 public:
  using Clock = std::chrono::steady_clock;

  IdentityQuota(uint32_t max_jobs, uint32_t starts_per_minute);

  // A RUN from `identity` wants a job (running or queued). Refused with kUnauthorized and a plain
  // sentence ("too many jobs running for alice: 4 of 4", "too many job starts for alice: 60 in the
  // last minute, the limit is 60"); otherwise counted until release(identity).
  Result<void> admit(const std::string& identity, Clock::time_point now);
  // The job admitted for `identity` ended or its session went away.
  void release(const std::string& identity);

  uint32_t active(const std::string& identity) const;

 private:
  struct Usage {
    uint32_t active = 0;
    std::deque<Clock::time_point> starts;  // within the last minute, oldest first
  };
  uint32_t max_jobs_, starts_per_minute_;
  std::map<std::string, Usage> usage_;
};

}  // namespace pyrun::server
