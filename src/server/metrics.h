// pyrund's metrics: counters, gauges and histograms the front updates as it works, rendered in the
// Prometheus text exposition format (version 0.0.4) for GET /metrics. No I/O here.
#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/messages.h"

namespace pyrun::server {

// A cumulative histogram with fixed upper bounds (seconds), rendered as _bucket/_sum/_count.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends the sample lines of `name` (its HELP and TYPE lines are the caller's).
  void render(std::string& out, std::string_view name) const;
  uint64_t count() const noexcept { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Why a connection ended before it was authenticated: the caps closing it before TLS, or the
// handshake's outcome. Each one is a label value of pyrund_handshakes_refused_total.
enum class Refusal {
  kMaxConnections,          // over max_connections: closed before TLS
  kMaxHandshakes,           // over max_handshakes
  kMaxHandshakesPerSource,  // over max_handshakes_per_source
  kTimeout,                 // no handshake within handshake_timeout_seconds
  kNoCertificate,           // the client sent none
  kUntrusted,               // not issued by our CA (or a broken chain)
  kExpired,                 // expired or not yet valid
  kRevoked,                 // on the CRL
  kTls,                     // any other TLS failure (protocol, ALPN, version, a reset)
  kIdentity,                // verified, but its name or serial could not be read
  kProxyHeader,             // a trusted proxy's connection without a valid PROXY v2 header
};
inline constexpr size_t kRefusalCount = 11;
std::string_view refusalLabel(Refusal r) noexcept;

class Metrics {
 public:
  Metrics();

  // The values read at scrape time from the front's own state.
  struct Gauges {
    uint32_t jobs_running = 0;
    uint32_t jobs_queued = 0;
    uint64_t connections_open = 0;
    bool draining = false;
  };

  void jobStarted() noexcept { ++jobs_started_; }
  void jobEnded(proto::Verdict verdict, double wall_seconds);
  void queueWaited(double seconds) { queue_wait_.observe(seconds); }
  void refused(Refusal reason) noexcept { ++refused_[static_cast<size_t>(reason)]; }
  void bytesIn(uint64_t n) noexcept { bytes_in_ += n; }
  void bytesOut(uint64_t n) noexcept { bytes_out_ += n; }
  void policyReload(bool ok) noexcept { ++(ok ? reloads_ok_ : reloads_failed_); }
  // The nextUpdate of the CRL in force (nullopt: no CRL configured, or none without nextUpdate).
  void crlNextUpdate(std::optional<std::time_t> when) noexcept { crl_next_update_ = when; }

  // The whole exposition: HELP, TYPE and samples of every metric, each family once.
  std::string render(const Gauges& gauges) const;

 private:
  uint64_t jobs_started_ = 0;
  std::array<uint64_t, 11> ended_by_verdict_{};  // indexed by proto::Verdict
  std::array<uint64_t, kRefusalCount> refused_{};
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  uint64_t reloads_ok_ = 0;
  uint64_t reloads_failed_ = 0;
  std::optional<std::time_t> crl_next_update_;
  Histogram job_duration_;
  Histogram queue_wait_;
};

}  // namespace pyrun::server
