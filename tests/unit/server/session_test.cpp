// A pyrund session against a fake spawner: the front's side of a job's life driven one spawner
// message at a time (revocation after the job's end, a cancel while the job is being started, a
// job that outlives its session, a spawner breaking the protocol, a client that vanishes while its
// stdin waits, a client that stops reading), with a real TLS client on loopback and the audit log
// read back. The session runs on its own thread, as in pyrund; the test drives both ends.
#include "server/session.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <csignal>
#include <future>
#include <sstream>
#include <thread>

#include "sandbox/channel.h"
#include "server/spawner_link.h"
#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "tls/tls.h"

namespace pyrun::server {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

// Bounds what must happen; never the thing measured.
constexpr auto kPatience = 30s;

// The spawner's end of the socket, used from the test thread.
class FakeSpawner {
 public:
  explicit FakeSpawner(UniqueFd fd) : fd_(std::move(fd)) {}

  // The next request from the front, or nullopt when none comes within `wait`.
  std::optional<sandbox::channel::Request> receive(std::chrono::milliseconds wait = kPatience) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return std::nullopt;
    auto d =
        sandbox::channel::receiveDatagram(fd_.get(), sandbox::channel::kMaxRequestBytes, false);
    if (!d || !*d) return std::nullopt;
    auto r = sandbox::channel::decodeRequest((*d)->bytes, std::move((*d)->fds));
    if (!r) return std::nullopt;
    return std::move(*r);
  }

  // The job id of the next request when it is a SpawnJob, else 0.
  uint64_t receiveSpawn() {
    auto r = receive();
    auto* spawn = r ? std::get_if<sandbox::channel::SpawnRequest>(&*r) : nullptr;
    return spawn != nullptr ? spawn->job_id : 0;
  }

  // True when the next request is a KillJob for job_id.
  bool receiveKill(uint64_t job_id, std::chrono::milliseconds wait = kPatience) {
    auto r = receive(wait);
    auto* kill = r ? std::get_if<sandbox::KillJob>(&*r) : nullptr;
    return kill != nullptr && kill->job_id == job_id;
  }

  void send(const sandbox::FromSpawner& message, std::vector<int> fds = {}) {
    auto r = sandbox::channel::sendDatagram(fd_.get(), sandbox::encodeMessage(message), fds);
    ASSERT_TRUE(r) << r.error().detail();
  }

 private:
  UniqueFd fd_;
};

// The job's ends of its stdio pipes (the front gets the others with JobStarted).
struct JobPipes {
  UniqueFd stdin_read, stdin_write, stdout_read, stdout_write, stderr_read, stderr_write;

  JobPipes() {
    int p[2];
    for (auto [r, w] :
         {std::pair{&stdin_read, &stdin_write}, std::pair{&stdout_read, &stdout_write},
          std::pair{&stderr_read, &stderr_write}}) {
      if (::pipe2(p, O_CLOEXEC) != 0) std::abort();
      r->reset(p[0]);
      w->reset(p[1]);
    }
  }
};

// A pyrun/1 client over TLS; every operation gives up after kPatience.
class Client {
 public:
  Client(asio::ssl::context& ctx, uint16_t port) : stream_(io_, ctx) {
    stream_.lowest_layer().connect({asio::ip::address_v4::loopback(), port});
  }

  bool handshake() {
    error_code result = asio::error::timed_out;
    stream_.async_handshake(asio::ssl::stream_base::client, [&](error_code ec) { result = ec; });
    runOps();
    return !result;
  }

  // Writes all of bytes; false when that failed or took longer than `patience`.
  bool send(const std::vector<uint8_t>& bytes,
            std::chrono::steady_clock::duration patience = kPatience) {
    error_code result = asio::error::timed_out;
    asio::async_write(stream_, asio::buffer(bytes), [&](error_code ec, size_t) { result = ec; });
    runOps(patience);
    return !result;
  }

  // The next frame, or nullopt at the end of the stream (or an error, or no frame in time).
  std::optional<proto::Frame> read() {
    for (;;) {
      if (auto f = frames_.next()) return f;
      error_code result = asio::error::timed_out;
      size_t got = 0;
      stream_.async_read_some(asio::buffer(buffer_), [&](error_code ec, size_t n) {
        result = ec;
        got = n;
      });
      runOps();
      if (result || !frames_.feed(std::span<const uint8_t>(buffer_.data(), got))) {
        return std::nullopt;
      }
    }
  }

  // Drops the connection without a word, like a killed process.
  void close() {
    error_code ignored;
    stream_.lowest_layer().close(ignored);
  }

 private:
  void runOps(std::chrono::steady_clock::duration patience = kPatience) {
    io_.restart();
    io_.run_for(patience);
    if (!io_.stopped()) {
      // Timed out: cancel, and let the handler run so that nothing refers to the stack.
      error_code ignored;
      stream_.lowest_layer().cancel(ignored);
      io_.restart();
      io_.run();
    }
  }

  asio::io_context io_;
  asio::ssl::stream<tcp::socket> stream_;
  proto::FrameReader frames_;
  std::array<uint8_t, 16384> buffer_{};
};

class SessionTest : public ::testing::Test {
 protected:
  void TearDown() override { stopServer(); }

  void startServer(uint32_t idle_timeout_seconds = 30) {
    ServerConfig config;
    config.max_jobs = 1;
    config.queue = 4;
    config.idle_timeout_seconds = idle_timeout_seconds;
    config.write_stall_timeout_seconds = idle_timeout_seconds;
    auto server_tls = tls::makeServerContext({pki_.serverBundle(), "", ""});
    ASSERT_TRUE(server_tls) << server_tls.error().detail();
    auto client_tls = tls::makeClientContext({pki_.clientBundle("alice"), "", ""});
    ASSERT_TRUE(client_tls) << client_tls.error().detail();
    client_tls_ = *client_tls;
    auto pair = makeSocketPair(SOCK_SEQPACKET);
    ASSERT_TRUE(pair) << pair.error().detail();
    front_fd_ = pair->first.get();
    spawner_ = std::make_unique<FakeSpawner>(std::move(pair->second));
    auto audit = AuditLog::open(audit_path_);
    ASSERT_TRUE(audit) << audit.error().detail();
    PolicySet policies;
    policies.policies["default"] = policy::Policy{};
    policies.identities.default_policy = "default";
    io_.emplace(1);
    env_ = std::make_shared<SessionEnv>(
        config, *server_tls,
        std::make_unique<SpawnerLink>(io_->get_executor(), std::move(pair->first)),
        std::move(policies), std::move(*audit));
    // As Server::start: a spawner that breaks the protocol stops the front at once.
    env_->spawner->start([env = env_.get()](uint64_t) { env->scheduler.release(); },
                         [this](const Error&) {
                           spawner_failed_ = true;
                           io_->stop();
                         });
    acceptor_.emplace(*io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    work_.emplace(io_->get_executor());
    thread_ = std::thread([this] { io_->run(); });
  }

  // Stops the front's thread and destroys the front: the sessions still open end here, as in
  // pyrund after io_context::run() returned.
  void stopServer() {
    if (!io_) return;
    work_.reset();
    io_->stop();
    if (thread_.joinable()) thread_.join();
    env_.reset();
    acceptor_.reset();
    io_.reset();
  }

  // Runs f on the front's thread and returns its result.
  template <class F>
  auto onFront(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(*io_, [&task] { task(); });
    return result.get();
  }

  // Connects a client and hands the accepted connection to a new session; reads READY.
  void connect() {
    client_ = std::make_unique<Client>(*client_tls_, acceptor_->local_endpoint().port());
    tcp::socket socket(*io_);
    acceptor_->accept(socket);
    session_ = onFront([&] {
      auto s = std::make_shared<Session>(env_, std::move(socket), "127.0.0.1", false);
      s->start();
      return std::weak_ptr<Session>(s);
    });
    ASSERT_TRUE(client_->handshake());
    expectFrame(proto::FrameType::kReady);
  }

  // Sends RUN and returns the id of the job the spawner is asked for.
  uint64_t requestJob() {
    proto::RunRequest run;
    run.script_name = "job.py";
    run.script = "print(1)\n";
    EXPECT_TRUE(client_->send(proto::encode(run)));
    uint64_t id = spawner_->receiveSpawn();
    EXPECT_NE(id, 0u) << "no SpawnJob";
    return id;
  }

  void sendStarted(uint64_t job_id, JobPipes& pipes) {
    ASSERT_NO_FATAL_FAILURE(spawner_->send(
        sandbox::JobStarted{job_id, 4242, {}},
        {pipes.stdin_write.get(), pipes.stdout_read.get(), pipes.stderr_read.get()}));
    pipes.stdin_write.reset();
    pipes.stdout_read.reset();
    pipes.stderr_read.reset();
  }

  // connect(), RUN, the job started: STARTED read. A void helper, so that a failed ASSERT inside
  // ends the test at the caller's ASSERT_NO_FATAL_FAILURE.
  void startJob(JobPipes& pipes, uint64_t& id) {
    ASSERT_NO_FATAL_FAILURE(connect());
    id = requestJob();
    ASSERT_NO_FATAL_FAILURE(sendStarted(id, pipes));
    expectFrame(proto::FrameType::kStarted);
  }

  static sandbox::JobEnded killed(uint64_t job_id) {
    sandbox::JobEnded end;
    end.job_id = job_id;
    end.signaled = true;
    end.code = SIGKILL;
    end.cause = sandbox::EndCause::kKilled;
    return end;
  }

  std::vector<uint8_t> expectFrame(proto::FrameType type) {
    auto f = client_->read();
    EXPECT_TRUE(f) << "no frame, expected " << proto::frameTypeName(static_cast<uint8_t>(type));
    if (!f) return {};
    EXPECT_EQ(f->type, type) << proto::frameTypeName(static_cast<uint8_t>(f->type));
    return f->payload;
  }

  proto::Exit expectExit() {
    auto payload = expectFrame(proto::FrameType::kExit);
    auto exit = proto::decodeExit(payload);
    EXPECT_TRUE(exit) << "no EXIT";
    return exit ? *exit : proto::Exit{};
  }

  // Runs f on the front's thread once every message the fake spawner sent has been read there
  // (and so handled: the link dispatches each message as it reads it).
  void afterSpawnerMessages(std::function<void()> f) {
    std::promise<void> done;
    std::function<void()> attempt = [&] {
      pollfd p{front_fd_, POLLIN, 0};
      if (::poll(&p, 1, 0) > 0) {
        asio::post(*io_, attempt);
        return;
      }
      f();
      done.set_value();
    };
    asio::post(*io_, attempt);
    done.get_future().get();
  }

  std::string audit() const { return test::readFileOrEmpty(audit_path_); }
  size_t jobEnds(const std::vector<std::string>& needles = {}) const {
    std::vector<std::string> all = {"\"event\":\"job_end\""};
    all.insert(all.end(), needles.begin(), needles.end());
    return test::countLines(audit(), all);
  }

  test::TempDir dir_{"session"};
  test::Pki pki_{dir_.path()};
  std::string audit_path_ = dir_ / "audit.jsonl";
  std::optional<asio::io_context> io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::optional<tcp::acceptor> acceptor_;
  std::shared_ptr<SessionEnv> env_;
  std::shared_ptr<asio::ssl::context> client_tls_;
  std::unique_ptr<FakeSpawner> spawner_;
  int front_fd_ = -1;
  std::atomic<bool> spawner_failed_{false};
  std::thread thread_;
  std::unique_ptr<Client> client_;
  std::weak_ptr<Session> session_;
};

TEST_F(SessionTest, RevocationAfterTheJobEndedKeepsTheJobsOwnVerdict) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  JobPipes pipes;
  uint64_t id = 0;
  ASSERT_NO_FATAL_FAILURE(startJob(pipes, id));
  ASSERT_EQ(::write(pipes.stdout_write.get(), "hi\n", 3), 3);
  EXPECT_EQ(expectFrame(proto::FrameType::kStdout), std::vector<uint8_t>({'h', 'i', '\n'}));
  // The program exited 0; its output pipes are still open (a grandchild holds them), so the
  // session waits for their end before EXIT. The revocation comes in between.
  sandbox::JobEnded end;
  end.job_id = id;
  ASSERT_NO_FATAL_FAILURE(spawner_->send(end));
  afterSpawnerMessages([&] {
    if (auto s = session_.lock()) s->revoke();
  });
  pipes.stdout_write.reset();
  pipes.stderr_write.reset();
  proto::Exit exit = expectExit();
  EXPECT_EQ(exit.kind, proto::ExitKind::kExited);
  EXPECT_EQ(exit.code, 0);
  EXPECT_EQ(exit.verdict, proto::Verdict::kOk);
  EXPECT_EQ(exit.detail, "");
  // Nothing to kill: a KillJob would have been sent before EXIT was.
  EXPECT_FALSE(spawner_->receive(0ms));
  ASSERT_TRUE(test::eventually([&] { return jobEnds() == 1; }, kPatience)) << audit();
  EXPECT_EQ(jobEnds({"\"verdict\":\"ok\""}), 1u) << audit();
  EXPECT_EQ(audit().find("revoked"), std::string::npos) << audit();
}

TEST_F(SessionTest, RevocationWhileTheJobRunsKillsIt) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  JobPipes pipes;
  uint64_t id = 0;
  ASSERT_NO_FATAL_FAILURE(startJob(pipes, id));
  onFront([&] {
    if (auto s = session_.lock()) s->revoke();
    return 0;
  });
  ASSERT_TRUE(spawner_->receiveKill(id));
  ASSERT_NO_FATAL_FAILURE(spawner_->send(killed(id)));
  pipes.stdout_write.reset();
  pipes.stderr_write.reset();
  proto::Exit exit = expectExit();
  EXPECT_EQ(exit.kind, proto::ExitKind::kSignaled);
  EXPECT_EQ(exit.code, SIGKILL);
  EXPECT_EQ(exit.verdict, proto::Verdict::kCancelled);
  EXPECT_EQ(exit.detail, "certificate revoked");
  ASSERT_TRUE(test::eventually([&] { return jobEnds() == 1; }, kPatience)) << audit();
  EXPECT_EQ(jobEnds({"\"verdict\":\"cancelled\"", "certificate revoked"}), 1u) << audit();
}

// docs/PROTOCOL.md 6.1: SIGNAL or CANCEL while Queued ends the session at once with EXIT (kind 1,
// the signal, verdict cancelled, zero counters), also when the job is being started already.
class CancelWhileStartingTest : public SessionTest {
 protected:
  void run(const std::vector<uint8_t>& frame, int signal) {
    ASSERT_NO_FATAL_FAILURE(startServer());
    ASSERT_NO_FATAL_FAILURE(connect());
    uint64_t id = requestJob();
    ASSERT_TRUE(client_->send(frame));
    proto::Exit exit = expectExit();
    EXPECT_EQ(exit.kind, proto::ExitKind::kSignaled);
    EXPECT_EQ(exit.code, signal);
    EXPECT_EQ(exit.verdict, proto::Verdict::kCancelled);
    EXPECT_EQ(exit.detail, "cancelled before the job started");
    EXPECT_EQ(
        exit.cpu_us + exit.wall_us + exit.peak_memory_bytes + exit.stdout_bytes + exit.stderr_bytes,
        0u);
    ASSERT_TRUE(spawner_->receiveKill(id));
    // The spawner had started it already: it is drained and killed, never shown.
    JobPipes pipes;
    ASSERT_NO_FATAL_FAILURE(sendStarted(id, pipes));
    ASSERT_EQ(::write(pipes.stdout_write.get(), "secret\n", 7), 7);
    pipes.stdout_write.reset();
    pipes.stderr_write.reset();
    ASSERT_NO_FATAL_FAILURE(spawner_->send(killed(id)));
    EXPECT_FALSE(client_->read()) << "a frame after EXIT";
    ASSERT_TRUE(test::eventually([&] { return jobEnds() == 1; }, kPatience)) << audit();
    EXPECT_EQ(jobEnds({"\"verdict\":\"cancelled\""}), 1u) << audit();
  }
};

TEST_F(CancelWhileStartingTest, CancelEndsTheSessionAtOnceWithSignal9) {
  ASSERT_NO_FATAL_FAILURE(run(proto::encodeEmpty(proto::FrameType::kCancel), SIGKILL));
}

TEST_F(CancelWhileStartingTest, SignalEndsTheSessionAtOnceWithThatSignal) {
  ASSERT_NO_FATAL_FAILURE(run(proto::encode(proto::Signal{static_cast<uint8_t>(SIGINT)}), SIGINT));
}

TEST_F(SessionTest, JobThatOutlivesItsSessionStillGetsOneJobEnd) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  JobPipes pipes;
  uint64_t id = 0;
  ASSERT_NO_FATAL_FAILURE(startJob(pipes, id));
  client_->close();
  ASSERT_TRUE(spawner_->receiveKill(id));
  // The job's pipes close before the spawner reports the end: the session has nothing left to
  // wait for and goes away first.
  pipes.stdout_write.reset();
  pipes.stderr_write.reset();
  pipes.stdin_read.reset();
  ASSERT_TRUE(
      test::eventually([&] { return onFront([&] { return session_.expired(); }); }, kPatience));
  EXPECT_EQ(jobEnds(), 0u) << audit();
  ASSERT_NO_FATAL_FAILURE(spawner_->send(killed(id)));
  ASSERT_TRUE(test::eventually([&] { return jobEnds() == 1; }, kPatience)) << audit();
  EXPECT_EQ(
      jobEnds({"\"verdict\":\"cancelled\"", "\"job_id\":" + std::to_string(id), "\"signal\":9"}),
      1u)
      << audit();
  ASSERT_NO_FATAL_FAILURE(stopServer());
  EXPECT_EQ(jobEnds(), 1u) << audit();
}

TEST_F(SessionTest, SpawnerSendingTheWrongDescriptorsStillLeavesOneJobEnd) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  ASSERT_NO_FATAL_FAILURE(connect());
  uint64_t id = requestJob();
  JobPipes pipes;
  // Two descriptors instead of three: a spawner that breaks the protocol stops the front.
  ASSERT_NO_FATAL_FAILURE(spawner_->send(sandbox::JobStarted{id, 4242, {}},
                                         {pipes.stdin_write.get(), pipes.stdout_read.get()}));
  ASSERT_TRUE(test::eventually([&] { return spawner_failed_.load(); }, kPatience));
  ASSERT_NO_FATAL_FAILURE(stopServer());
  EXPECT_EQ(jobEnds(), 1u) << audit();
  EXPECT_EQ(jobEnds({"\"verdict\":\"internal-error\"", "\"job_id\":" + std::to_string(id)}), 1u)
      << audit();
}

TEST_F(SessionTest, ClientThatVanishesWhileItsStdinWaitsGetsItsJobKilled) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  JobPipes pipes;
  uint64_t id = 0;
  ASSERT_NO_FATAL_FAILURE(startJob(pipes, id));
  // The program never reads: its pipe (64 KiB) and the session's stdin buffer (256 KiB) fill,
  // and the session stops reading the connection with most of this still unread behind it.
  std::vector<uint8_t> chunk(proto::kMaxDataChunk, 'x');
  std::vector<uint8_t> frames;
  for (int i = 0; i < 24; ++i) {
    auto f = proto::encodeData(proto::FrameType::kStdin, chunk);
    frames.insert(frames.end(), f.begin(), f.end());
  }
  // Whatever the kernel buffers take; a write that stops moving is abandoned with the client.
  client_->send(frames, 5s);
  client_->close();
  EXPECT_TRUE(spawner_->receiveKill(id)) << "the job of a vanished client was not killed";
}

TEST_F(SessionTest, ClientThatStopsReadingIsCutOffAfterTheIdleTimeout) {
  ASSERT_NO_FATAL_FAILURE(startServer(/*idle_timeout_seconds=*/1));
  JobPipes pipes;
  uint64_t id = 0;
  ASSERT_NO_FATAL_FAILURE(startJob(pipes, id));
  // The program writes without end; the client reads nothing more.
  ASSERT_EQ(::fcntl(pipes.stdout_write.get(), F_SETFL, O_NONBLOCK), 0);
  std::vector<char> chunk(65536, 'y');
  bool killed_job = false;
  auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (!killed_job && std::chrono::steady_clock::now() < deadline) {
    while (::write(pipes.stdout_write.get(), chunk.data(), chunk.size()) > 0) {
    }
    pollfd p{pipes.stdout_write.get(), POLLOUT, 0};
    if (::poll(&p, 1, 100) > 0) continue;  // the front still takes output
    killed_job = spawner_->receiveKill(id, 100ms);
  }
  EXPECT_TRUE(killed_job) << "a client that reads nothing holds its job";
  pipes.stdout_write.reset();
  pipes.stderr_write.reset();
  pipes.stdin_read.reset();
  ASSERT_NO_FATAL_FAILURE(spawner_->send(killed(id)));
  EXPECT_TRUE(
      test::eventually([&] { return onFront([&] { return session_.expired(); }); }, kPatience))
      << "the session stays";
}

// docs/PROTOCOL.md 7: a client that breaks the protocol while its job runs gets ERROR `code`, and
// the job's verdict says whose fault the ending was (not internal-error).
class ProtocolErrorWhileRunningTest : public SessionTest {
 protected:
  void run(const std::vector<uint8_t>& frame, proto::ErrorCode code) {
    startServer();
    JobPipes pipes;
    uint64_t id = 0;
    ASSERT_NO_FATAL_FAILURE(startJob(pipes, id));
    ASSERT_TRUE(client_->send(frame));
    auto error = proto::decodeError(expectFrame(proto::FrameType::kError));
    ASSERT_TRUE(error);
    EXPECT_EQ(error->code, code);
    ASSERT_TRUE(spawner_->receiveKill(id));
    spawner_->send(killed(id));
    pipes.stdout_write.reset();
    pipes.stderr_write.reset();
    ASSERT_TRUE(test::eventually([&] { return jobEnds() == 1; }, kPatience)) << audit();
    EXPECT_EQ(jobEnds({"\"verdict\":\"protocol-error\"", "\"job_id\":" + std::to_string(id),
                       "the client broke the protocol: "}),
              1u)
        << audit();
  }
};

TEST_F(ProtocolErrorWhileRunningTest, SecondRunGivesVerdictProtocolError) {
  proto::RunRequest again;
  again.script_name = "job.py";
  again.script = "print(2)\n";
  ASSERT_NO_FATAL_FAILURE(run(proto::encode(again), proto::ErrorCode::kUnexpectedFrame));
}

// A frame type no version of the protocol has.
TEST_F(ProtocolErrorWhileRunningTest, UnknownFrameGivesVerdictProtocolError) {
  ASSERT_NO_FATAL_FAILURE(run({0x7f, 0, 0, 0, 0}, proto::ErrorCode::kBadFrame));
}

}  // namespace
}  // namespace pyrun::server
