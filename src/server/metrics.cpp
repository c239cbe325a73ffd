// Prometheus text rendering of pyrund's metrics (see metrics.h).
#include "server/metrics.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "common/version.h"

namespace pyrun::server {
namespace {

// Seconds: a job's wall time ranges from a few ms (a print) to its wall limit (minutes); the queue
// wait from nothing to as long as jobs run.
const std::vector<double> kDurationBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                             1,     2.5,  5,     10,   30,  60,   300};
const std::vector<double> kWaitBounds = {0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels, uint64_t value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ").append(std::to_string(value)).append("\n");
}

constexpr proto::Verdict kVerdicts[] = {
    proto::Verdict::kOk,
    proto::Verdict::kCpuLimit,
    proto::Verdict::kWallLimit,
    proto::Verdict::kMemoryLimit,
    proto::Verdict::kOutputLimit,
    proto::Verdict::kCancelled,
    proto::Verdict::kSyscall,
    proto::Verdict::kProcessLimit,
    proto::Verdict::kFileSizeLimit,
    proto::Verdict::kServerShutdown,
    proto::Verdict::kInternalError,
};

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  if (std::isnan(value)) return;
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, std::string_view name) const {
  const std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    sample(out, bucket, "le=\"" + le + "\"", cumulative);
  }
  out.append(name).append("_sum ").append(number(sum_)).append("\n");
  sample(out, std::string(name) + "_count", "", count_);
}

std::string_view refusalLabel(Refusal r) noexcept {
  switch (r) {
    case Refusal::kMaxConnections:
      return "max_connections";
    case Refusal::kMaxHandshakes:
      return "max_handshakes";
    case Refusal::kMaxHandshakesPerSource:
      return "max_handshakes_per_source";
    case Refusal::kTimeout:
      return "timeout";
    case Refusal::kNoCertificate:
      return "no_certificate";
    case Refusal::kUntrusted:
      return "untrusted";
    case Refusal::kExpired:
      return "expired";
    case Refusal::kRevoked:
      return "revoked";
    case Refusal::kTls:
      return "tls";
    case Refusal::kIdentity:
      return "identity";
    case Refusal::kProxyHeader:
      return "proxy_header";
  }
  return "tls";
}

Metrics::Metrics() : job_duration_(kDurationBounds), queue_wait_(kWaitBounds) {}

void Metrics::jobEnded(proto::Verdict verdict, double wall_seconds) {
  const auto i = static_cast<size_t>(verdict);
  // A verdict outside the enum (none is made by this front) counts as an internal error.
  ++ended_by_verdict_[i < ended_by_verdict_.size()
                          ? i
                          : static_cast<size_t>(proto::Verdict::kInternalError)];
  job_duration_.observe(wall_seconds);
}

std::string Metrics::render(const Gauges& g) const {
  std::string out;
  out.reserve(8192);
  family(out, "pyrund_build_info", "gauge", "The running pyrund's version (value always 1).");
  sample(out, "pyrund_build_info", std::string("version=\"") + kVersion + "\"", 1);
  family(out, "pyrund_draining", "gauge",
         "1 while pyrund drains after SIGTERM (no new jobs; /healthz answers 503), else 0.");
  sample(out, "pyrund_draining", "", g.draining ? 1 : 0);
  family(out, "pyrund_jobs_running", "gauge", "Jobs holding a slot (handed to the spawner).");
  sample(out, "pyrund_jobs_running", "", g.jobs_running);
  family(out, "pyrund_jobs_queued", "gauge", "Jobs waiting for a slot.");
  sample(out, "pyrund_jobs_queued", "", g.jobs_queued);
  family(out, "pyrund_jobs_started_total", "counter", "Jobs handed to the spawner.");
  sample(out, "pyrund_jobs_started_total", "", jobs_started_);
  family(out, "pyrund_jobs_ended_total", "counter", "Jobs ended, by verdict.");
  for (proto::Verdict v : kVerdicts) {
    sample(out, "pyrund_jobs_ended_total", "verdict=\"" + proto::verdictName(v) + "\"",
           ended_by_verdict_[static_cast<size_t>(v)]);
  }
  family(out, "pyrund_handshakes_refused_total", "counter",
         "Connections refused before authentication, by reason.");
  for (size_t i = 0; i < kRefusalCount; ++i) {
    sample(out, "pyrund_handshakes_refused_total",
           "reason=\"" + std::string(refusalLabel(static_cast<Refusal>(i))) + "\"", refused_[i]);
  }
  family(out, "pyrund_connections_open", "gauge", "Client connections open (any state).");
  sample(out, "pyrund_connections_open", "", g.connections_open);
  family(out, "pyrund_received_bytes_total", "counter", "TLS payload bytes read from clients.");
  sample(out, "pyrund_received_bytes_total", "", bytes_in_);
  family(out, "pyrund_sent_bytes_total", "counter", "TLS payload bytes written to clients.");
  sample(out, "pyrund_sent_bytes_total", "", bytes_out_);
  family(out, "pyrund_job_duration_seconds", "histogram",
         "Wall time of ended jobs, from fork to end, in seconds.");
  job_duration_.render(out, "pyrund_job_duration_seconds");
  family(out, "pyrund_job_queue_wait_seconds", "histogram",
         "Time from a RUN accepted to its job handed to the spawner, in seconds.");
  queue_wait_.render(out, "pyrund_job_queue_wait_seconds");
  if (crl_next_update_) {
    family(out, "pyrund_crl_next_update_timestamp_seconds", "gauge",
           "nextUpdate of the CRL in force, as a Unix time.");
    sample(out, "pyrund_crl_next_update_timestamp_seconds", "",
           static_cast<uint64_t>(*crl_next_update_ < 0 ? 0 : *crl_next_update_));
  }
  family(out, "pyrund_policy_reloads_total", "counter", "Policy reloads (SIGHUP), by result.");
  sample(out, "pyrund_policy_reloads_total", "result=\"ok\"", reloads_ok_);
  sample(out, "pyrund_policy_reloads_total", "result=\"failed\"", reloads_failed_);
  return out;
}

}  // namespace pyrun::server
