// Admission caps (see quotas.h).
#include "server/quotas.h"

namespace pyrun::server {

ConnectionGate::ConnectionGate(uint32_t max_connections, uint32_t max_handshakes,
                               uint32_t max_per_source)
    : max_connections_(max_connections),
      max_handshakes_(max_handshakes),
      max_per_source_(max_per_source) {}

ConnectionGate::Refusal ConnectionGate::admit(const std::string& source) {
  if (connections_ >= max_connections_) return Refusal::kConnections;
  if (handshakes_ >= max_handshakes_) return Refusal::kHandshakes;
  uint32_t& from = per_source_[source];
  if (from >= max_per_source_) {
    if (from == 0) per_source_.erase(source);
    return Refusal::kSourceHandshakes;
  }
  ++from;
  ++handshakes_;
  ++connections_;
  return Refusal::kNone;
}

void ConnectionGate::handshakeEnded(const std::string& source) {
  if (handshakes_ > 0) --handshakes_;
  auto it = per_source_.find(source);
  if (it == per_source_.end()) return;
  // Erased at zero: a scan from many addresses must not grow the map for ever.
  if (--it->second == 0) per_source_.erase(it);
}

void ConnectionGate::connectionClosed() {
  if (connections_ > 0) --connections_;
}

uint32_t ConnectionGate::handshakesFrom(const std::string& source) const {
  auto it = per_source_.find(source);
  return it == per_source_.end() ? 0 : it->second;
}

std::string ConnectionGate::describe(Refusal refusal, const std::string& source) const {
  switch (refusal) {
    case Refusal::kNone:
      return "";
    case Refusal::kConnections:
      return "too many open connections (" + std::to_string(max_connections_) + ")";
    case Refusal::kHandshakes:
      return "too many TLS handshakes in progress (" + std::to_string(max_handshakes_) + ")";
    case Refusal::kSourceHandshakes:
      return "too many TLS handshakes in progress from " + source + " (" +
             std::to_string(max_per_source_) + ")";
  }
  return "";
}

IdentityQuota::IdentityQuota(uint32_t max_jobs, uint32_t starts_per_minute)
    : max_jobs_(max_jobs), starts_per_minute_(starts_per_minute) {}

Result<void> IdentityQuota::admit(const std::string& identity, Clock::time_point now) {
  Usage& u = usage_[identity];
  while (!u.starts.empty() && now - u.starts.front() >= std::chrono::minutes(1)) {
    u.starts.pop_front();
  }
  if (u.active >= max_jobs_) {
    return Error(Errc::kPermission, "too many jobs running for " + identity + ": " +
                                        std::to_string(u.active) + " of " +
                                        std::to_string(max_jobs_));
  }
  if (u.starts.size() >= starts_per_minute_) {
    return Error(Errc::kPermission,
                 "too many job starts for " + identity + ": " + std::to_string(u.starts.size()) +
                     " in the last minute, the limit is " + std::to_string(starts_per_minute_));
  }
  ++u.active;
  u.starts.push_back(now);
  return {};
}

void IdentityQuota::release(const std::string& identity) {
  auto it = usage_.find(identity);
  if (it == usage_.end()) return;
  if (it->second.active > 0) --it->second.active;
  // Forget an identity with nothing running and no recent start, so the map stays small.
  if (it->second.active == 0 && it->second.starts.empty()) usage_.erase(it);
}

uint32_t IdentityQuota::active(const std::string& identity) const {
  auto it = usage_.find(identity);
  return it == usage_.end() ? 0 : it->second.active;
}

}  // namespace pyrun::server
