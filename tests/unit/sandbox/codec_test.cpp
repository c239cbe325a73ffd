// The spawner's message codecs and request datagrams: round trips and every malformed input.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/channel.h"
#include "sandbox/spawner.h"

namespace pyrun::sandbox {
namespace {

JobSpec sampleSpec() {
  JobSpec s;
  s.job_id = 0x0102030405060708ull;
  s.interpreter = "/usr/bin/python3";
  s.policy = "default";
  s.script_name = "fib.py";
  s.script = std::string("print('hi')\n\0binary", 20);
  s.args = {"30", "", "x y"};
  s.files = {{"data/in.txt", 0600, "abc"}, {"empty", 0644, ""}};
  s.limits.cpu_seconds = 7;
  s.limits.wall_seconds = 8;
  s.limits.memory_bytes = 1ull << 33;
  s.limits.file_size_bytes = 12345;
  s.limits.open_files = 99;
  s.limits.processes = 3;
  return s;
}

void expectSameSpec(const JobSpec& a, const JobSpec& b) {
  EXPECT_EQ(a.job_id, b.job_id);
  EXPECT_EQ(a.interpreter, b.interpreter);
  EXPECT_EQ(a.policy, b.policy);
  EXPECT_EQ(a.script_name, b.script_name);
  EXPECT_EQ(a.script, b.script);
  EXPECT_EQ(a.args, b.args);
  ASSERT_EQ(a.files.size(), b.files.size());
  for (size_t i = 0; i < a.files.size(); ++i) {
    EXPECT_EQ(a.files[i].name, b.files[i].name);
    EXPECT_EQ(a.files[i].mode, b.files[i].mode);
    EXPECT_EQ(a.files[i].data, b.files[i].data);
  }
  EXPECT_EQ(a.limits.cpu_seconds, b.limits.cpu_seconds);
  EXPECT_EQ(a.limits.wall_seconds, b.limits.wall_seconds);
  EXPECT_EQ(a.limits.memory_bytes, b.limits.memory_bytes);
  EXPECT_EQ(a.limits.file_size_bytes, b.limits.file_size_bytes);
  EXPECT_EQ(a.limits.open_files, b.limits.open_files);
  EXPECT_EQ(a.limits.processes, b.limits.processes);
}

TEST(SpawnerCodec, JobSpecRoundTrips) {
  JobSpec s = sampleSpec();
  auto decoded = decodeJobSpec(encodeJobSpec(s));
  ASSERT_TRUE(decoded) << decoded.error().detail();
  expectSameSpec(s, *decoded);
}

TEST(SpawnerCodec, JobSpecCarriesTheTerminal) {
  JobSpec s = sampleSpec();
  s.terminal = {true, 50, 132, "tmux-256color"};
  auto decoded = decodeJobSpec(encodeJobSpec(s));
  ASSERT_TRUE(decoded) << decoded.error().detail();
  EXPECT_TRUE(decoded->terminal.enabled);
  EXPECT_EQ(decoded->terminal.rows, 50);
  EXPECT_EQ(decoded->terminal.cols, 132);
  EXPECT_EQ(decoded->terminal.term, "tmux-256color");
  EXPECT_FALSE(decodeJobSpec(encodeJobSpec(sampleSpec()))->terminal.enabled);
}

TEST(SpawnerCodec, JobSpecRefusesATermThatIsNotPlain) {
  // The spawner builds the job's environment from it: a compromised front must not smuggle
  // anything in through TERM.
  for (std::string term : std::vector<std::string>{"", "xterm\nLD_PRELOAD=/tmp/x", "a b", "XTERM",
                                                   std::string(33, 'x'), "xterm;x"}) {
    JobSpec s = sampleSpec();
    s.terminal = {true, 24, 80, term};
    EXPECT_FALSE(decodeJobSpec(encodeJobSpec(s))) << term;
  }
  JobSpec zero = sampleSpec();
  zero.terminal = {true, 0, 80, "xterm"};
  EXPECT_FALSE(decodeJobSpec(encodeJobSpec(zero)));
  EXPECT_TRUE(isPlainTermName("xterm-256color"));
}

TEST(SpawnerCodec, JobSpecRejectsEveryTruncation) {
  JobSpec spec = sampleSpec();
  spec.terminal = {true, 24, 80, "xterm"};
  auto bytes = encodeJobSpec(spec);
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = decodeJobSpec(std::span<const uint8_t>(bytes.data(), n));
    ASSERT_FALSE(r) << "accepted a spec truncated to " << n << " bytes";
    EXPECT_TRUE(r.error().is(Errc::kProtocol));
  }
}

TEST(SpawnerCodec, JobSpecRejectsTrailingBytes) {
  auto bytes = encodeJobSpec(sampleSpec());
  bytes.push_back(0);
  auto r = decodeJobSpec(bytes);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("trailing bytes"), std::string::npos) << r.error().detail();
}

TEST(SpawnerCodec, JobSpecRejectsCountsLargerThanTheBytesLeft) {
  JobSpec s;
  s.script_name = "a.py";
  auto bytes = encodeJobSpec(s);
  // The args count sits after job_id (8), interpreter, policy, script_name and script strings.
  size_t args_at = 8 + 4 + s.interpreter.size() + 4 + 4 + s.script_name.size() + 4;
  for (int i = 0; i < 4; ++i) bytes[args_at + static_cast<size_t>(i)] = 0xff;
  auto r = decodeJobSpec(bytes);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("limit"), std::string::npos) << r.error().detail();
  bytes[args_at] = 100;  // 100 args, each at least 4 bytes: more than remain
  for (int i = 1; i < 4; ++i) bytes[args_at + static_cast<size_t>(i)] = 0;
  r = decodeJobSpec(bytes);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("truncated"), std::string::npos) << r.error().detail();
}

TEST(SpawnerCodec, MessagesRoundTrip) {
  std::vector<FromSpawner> messages = {
      JobStarted{42, 1234, {}},
      JobFailed{43, "execve", 2, "execve /nope: No such file or directory"},
      JobEnded{44,
               true,
               9,
               EndCause::kCpuLimit,
               1500000,
               1ull << 30,
               2000000,
               "",
               "results-44-ab",
               "x: left out",
               {}},
      JobEnded{45, true, 31, EndCause::kSyscall, 1, 2, 3, "ptrace", "", "", {}},
      PoliciesReloaded{false, "policy/x.yaml:3:5: unknown key 'foo'"},
      PoliciesReloaded{true, "loaded 2 policies: default, strict"},
  };
  for (const auto& m : messages) {
    auto bytes = encodeMessage(m);
    ASSERT_LE(bytes.size(), kMaxFromSpawnerBytes);
    auto d = decodeFromSpawner(bytes);
    ASSERT_TRUE(d) << d.error().detail();
    ASSERT_EQ(d->index(), m.index());
    EXPECT_EQ(encodeMessage(*d), bytes);
    for (size_t n = 0; n < bytes.size(); ++n) {
      EXPECT_FALSE(decodeFromSpawner(std::span<const uint8_t>(bytes.data(), n)));
    }
    bytes.push_back(1);
    EXPECT_FALSE(decodeFromSpawner(bytes));
  }
  auto ended = std::get<JobEnded>(*decodeFromSpawner(encodeMessage(messages[2])));
  EXPECT_EQ(ended.job_id, 44u);
  EXPECT_TRUE(ended.signaled);
  EXPECT_EQ(ended.code, 9);
  EXPECT_EQ(ended.cause, EndCause::kCpuLimit);
  EXPECT_EQ(ended.cpu_us, 1500000u);
  EXPECT_EQ(ended.peak_memory_bytes, 1ull << 30);
  EXPECT_EQ(ended.wall_us, 2000000u);
  auto syscall = std::get<JobEnded>(*decodeFromSpawner(encodeMessage(messages[3])));
  EXPECT_EQ(syscall.cause, EndCause::kSyscall);
  EXPECT_EQ(syscall.detail, "ptrace");
  auto reloaded = std::get<PoliciesReloaded>(*decodeFromSpawner(encodeMessage(messages[4])));
  EXPECT_FALSE(reloaded.ok);
  EXPECT_EQ(reloaded.detail, "policy/x.yaml:3:5: unknown key 'foo'");
  EXPECT_TRUE(std::get<PoliciesReloaded>(*decodeFromSpawner(encodeMessage(messages[5]))).ok);
}

TEST(SpawnerCodec, StageStampsTravelWithStartAndEnd) {
  JobStarted started{7, 4242, {}};
  started.times.set(pyrun::JobStage::kWorkDir, 1000);
  started.times.set(pyrun::JobStage::kClone, 1200);
  started.times.set(pyrun::JobStage::kExec, 9000);
  auto s = decodeFromSpawner(encodeMessage(started));
  ASSERT_TRUE(s) << s.error().detail();
  EXPECT_EQ(std::get<JobStarted>(*s).times, started.times);
  EXPECT_FALSE(std::get<JobStarted>(*s).times.has(pyrun::JobStage::kCgroup));
  JobEnded ended{7, false, 0, EndCause::kExited, 1, 2, 3, "", "", "", {}};
  ended.times.set(pyrun::JobStage::kExit, 20000);
  ended.times.set(pyrun::JobStage::kCleanup, 21000);
  auto e = decodeFromSpawner(encodeMessage(ended));
  ASSERT_TRUE(e) << e.error().detail();
  EXPECT_EQ(std::get<JobEnded>(*e).times, ended.times);
  // Without stamps the list is one zero count byte.
  auto bare = encodeMessage(JobStarted{7, 4242, {}});
  EXPECT_EQ(bare.size(), 1u + 8 + 4 + 1);
  EXPECT_EQ(bare.back(), 0);
}

TEST(SpawnerCodec, RejectsUnknownZeroRepeatedOrTooManyStageStamps) {
  const auto bare = encodeMessage(JobStarted{7, 4242, {}});
  auto with = [&](std::vector<std::pair<uint8_t, uint64_t>> stamps, size_t count) {
    auto bytes = bare;
    bytes.back() = static_cast<uint8_t>(count);
    for (auto [stage, micros] : stamps) {
      bytes.push_back(stage);
      for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(micros >> (8 * i)));
    }
    return decodeFromSpawner(bytes);
  };
  EXPECT_TRUE(with({{4, 100}}, 1));
  EXPECT_FALSE(with({{static_cast<uint8_t>(pyrun::kJobStageCount), 100}}, 1));  // unknown stage
  EXPECT_FALSE(with({{4, 0}}, 1));                                              // zero time
  EXPECT_FALSE(with({{4, 100}, {4, 200}}, 2));                                  // given twice
  EXPECT_FALSE(with({{4, 100}}, 2));                                            // truncated
  EXPECT_FALSE(with({}, pyrun::kJobStageCount + 1));                            // too many
}

// One encoding per message (the fuzzer's round trip found the second): stamps come in stage order.
TEST(SpawnerCodec, StageStampsOutOfOrderAreRefused) {
  JobStarted started{7, 42, {}};
  started.times.set(pyrun::JobStage::kWorkDir, 1000);
  started.times.set(pyrun::JobStage::kExec, 9000);
  auto bytes = encodeMessage(started);
  ASSERT_TRUE(decodeFromSpawner(bytes));
  // The two stamps (1 stage byte and 8 time bytes each) at the end, swapped.
  const size_t first = bytes.size() - 18;
  std::vector<uint8_t> swapped(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(first));
  swapped.insert(swapped.end(), bytes.begin() + static_cast<std::ptrdiff_t>(first + 9),
                 bytes.end());
  swapped.insert(swapped.end(), bytes.begin() + static_cast<std::ptrdiff_t>(first),
                 bytes.begin() + static_cast<std::ptrdiff_t>(first + 9));
  auto d = decodeFromSpawner(swapped);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().detail().find("out of order"), std::string::npos) << d.error().detail();
}

TEST(SpawnerCodec, ReloadPoliciesCarriesNoPath) {
  auto bytes = channel::encodeRequest(ReloadPolicies{});
  EXPECT_EQ(bytes, std::vector<uint8_t>{4});
  auto d = channel::decodeRequest(bytes, {});
  ASSERT_TRUE(d) << d.error().detail();
  EXPECT_TRUE(std::holds_alternative<ReloadPolicies>(*d));
  // The old form, which named files for the root spawner to read, is refused: a front that
  // sends it is buggy or compromised.
  std::vector<uint8_t> with_paths = {4, 1, 0, 0, 0, 1, 0, 0, 0, 'x', 11, 0, 0, 0};
  for (char c : std::string("/etc/shadow")) with_paths.push_back(static_cast<uint8_t>(c));
  auto refused = channel::decodeRequest(with_paths, {});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().detail().find("wrong length"), std::string::npos)
      << refused.error().detail();
}

TEST(SpawnerCodec, JobFailedDetailIsCutToFitOneMessage) {
  JobFailed f{1, std::string(1000, 's'), 5, std::string(100000, 'd')};
  auto bytes = encodeMessage(f);
  EXPECT_LE(bytes.size(), kMaxFromSpawnerBytes);
  auto d = decodeFromSpawner(bytes);
  ASSERT_TRUE(d) << d.error().detail();
  EXPECT_EQ(std::get<JobFailed>(*d).detail, std::string(4096, 'd'));
}

// The largest JobEnded: both texts far over their limit, a results name at its limit, and every
// stage stamped. It must still fit one datagram, or the front would refuse it and lose the end.
TEST(SpawnerCodec, JobEndedWithEveryFieldAtItsLimitFitsOneMessage) {
  JobEnded e;
  e.job_id = ~0ull;
  e.cause = EndCause::kSyscall;
  e.syscall_named = true;
  e.detail = std::string(100000, 'd');
  e.results = std::string(255, 'n');
  e.results_detail = std::string(100000, 'r');
  for (size_t i = 0; i < pyrun::kJobStageCount; ++i) {
    e.times.set(static_cast<pyrun::JobStage>(i), 1000 + i);
  }
  auto bytes = encodeMessage(e);
  EXPECT_LE(bytes.size(), kMaxFromSpawnerBytes);
  auto d = decodeFromSpawner(bytes);
  ASSERT_TRUE(d) << d.error().detail();
  const auto& got = std::get<JobEnded>(*d);
  EXPECT_EQ(got.detail.size(), 3584u);
  EXPECT_EQ(got.results_detail.size(), 3584u);
  EXPECT_EQ(got.results, e.results);
}

TEST(SpawnerCodec, MessagesRejectUnknownTypeAndBadEnumValues) {
  std::vector<uint8_t> unknown = {9};
  auto r = decodeFromSpawner(unknown);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("unknown type 9"), std::string::npos);
  auto bytes = encodeMessage(JobEnded{1, false, 0, EndCause::kExited, 0, 0, 0, "", "", "", {}});
  bytes[1 + 8] = 2;  // signaled flag
  EXPECT_FALSE(decodeFromSpawner(bytes));
  bytes[1 + 8] = 0;
  bytes[1 + 8 + 1 + 4] = 200;  // cause
  EXPECT_FALSE(decodeFromSpawner(bytes));
}

// Whether the detail names the call travels as a flag, so that no reader guesses from the text.
TEST(SpawnerCodec, SyscallNamedFlagRoundTripsAndIsCheckedAgainstTheCause) {
  JobEnded named{45, true, 31, EndCause::kSyscall, 1, 2, 3, "ptrace", "", ""};
  named.syscall_named = true;
  auto d = decodeFromSpawner(encodeMessage(named));
  ASSERT_TRUE(d) << d.error().detail();
  EXPECT_TRUE(std::get<JobEnded>(*d).syscall_named);
  JobEnded unknown = named;
  unknown.syscall_named = false;
  unknown.detail = "forbidden system call (name unknown: no audit source)";
  d = decodeFromSpawner(encodeMessage(unknown));
  ASSERT_TRUE(d) << d.error().detail();
  EXPECT_FALSE(std::get<JobEnded>(*d).syscall_named);

  // The flag's byte follows the detail (u32 length + bytes).
  const size_t flag_at = 1 + 8 + 1 + 4 + 1 + 8 + 8 + 8 + 4 + named.detail.size();
  auto bytes = encodeMessage(named);
  ASSERT_EQ(bytes[flag_at], 1);
  bytes[flag_at] = 2;
  EXPECT_FALSE(decodeFromSpawner(bytes));
  JobEnded exited = named;
  exited.cause = EndCause::kExited;
  auto refused = decodeFromSpawner(encodeMessage(exited));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().detail().find("syscall-named flag"), std::string::npos);
}

TEST(SpawnerRequest, RequestsRoundTrip) {
  auto kill = channel::decodeRequest(channel::encodeRequest(KillJob{77}), {});
  ASSERT_TRUE(kill) << kill.error().detail();
  EXPECT_EQ(std::get<KillJob>(*kill).job_id, 77u);
  auto sig = channel::decodeRequest(channel::encodeRequest(SignalJob{78, 2}), {});
  ASSERT_TRUE(sig) << sig.error().detail();
  EXPECT_EQ(std::get<SignalJob>(*sig).job_id, 78u);
  EXPECT_EQ(std::get<SignalJob>(*sig).signal, 2);
  std::vector<UniqueFd> fds;
  fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  SpawnJob spawn;
  spawn.spec.job_id = 79;
  auto sp = channel::decodeRequest(channel::encodeRequest(spawn), std::move(fds));
  ASSERT_TRUE(sp) << sp.error().detail();
  EXPECT_EQ(std::get<channel::SpawnRequest>(*sp).job_id, 79u);
}

TEST(SpawnerRequest, RejectsWrongLengthsTypesAndDescriptorCounts) {
  auto kill = channel::encodeRequest(KillJob{1});
  auto longer = kill;
  longer.push_back(0);
  EXPECT_FALSE(channel::decodeRequest(longer, {}));
  EXPECT_FALSE(channel::decodeRequest(std::span<const uint8_t>(kill.data(), 5), {}));
  EXPECT_FALSE(channel::decodeRequest({}, {}));
  auto unknown = kill;
  unknown[0] = 5;
  auto r = channel::decodeRequest(unknown, {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("unknown type 5"), std::string::npos);
  // A kill with a descriptor, a spawn without one.
  std::vector<UniqueFd> fds;
  fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_FALSE(channel::decodeRequest(kill, std::move(fds)));
  SpawnJob spawn;
  EXPECT_FALSE(channel::decodeRequest(channel::encodeRequest(spawn), {}));
}

TEST(SpawnerRequest, SealedSpecRoundTripsAndUnsealedIsRejected) {
  JobSpec s = sampleSpec();
  auto fd = channel::makeSealedSpec(s);
  ASSERT_TRUE(fd) << fd.error().detail();
  auto read = channel::readSealedSpec(fd->get());
  ASSERT_TRUE(read) << read.error().detail();
  expectSameSpec(s, *read);
  // The front cannot change a sealed spec any more.
  EXPECT_LT(::write(fd->get(), "x", 1), 0);

  UniqueFd unsealed(::memfd_create("spec", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  auto bytes = encodeJobSpec(s);
  ASSERT_EQ(::write(unsealed.get(), bytes.data(), bytes.size()),
            static_cast<ssize_t>(bytes.size()));
  auto r = channel::readSealedSpec(unsealed.get());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("not sealed"), std::string::npos) << r.error().detail();
  // Sealed against writes only: growing or shrinking could still change what we read.
  ASSERT_EQ(::fcntl(unsealed.get(), F_ADD_SEALS, F_SEAL_WRITE), 0);
  EXPECT_FALSE(channel::readSealedSpec(unsealed.get()));
  // Not a memfd at all.
  UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_FALSE(channel::readSealedSpec(null.get()));
}

TEST(SpawnerRequest, RejectsSpecLargerThanTheLimit) {
  UniqueFd fd(::memfd_create("spec", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(kMaxJobSpecBytes + 1)), 0);
  ASSERT_EQ(::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK), 0);
  auto r = channel::readSealedSpec(fd.get());
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::kLimit)) << r.error().detail();
}

}  // namespace
}  // namespace pyrun::sandbox

namespace pyrun::sandbox {
namespace {

TEST(SpawnerChannel, JobStartedWithStampsArrivesWithItsDescriptors) {
  auto pair = makeSocketPair(SOCK_SEQPACKET);
  ASSERT_TRUE(pair) << pair.error().detail();
  JobStarted started{5, 77, {}};
  for (uint64_t i = 4; i < 10; ++i) {
    started.times.set(static_cast<pyrun::JobStage>(i), 10'790'878'204u + i);
  }
  int fds[3] = {0, 1, 2};
  ASSERT_TRUE(channel::sendDatagram(pair->first.get(), encodeMessage(started), fds));
  auto r = receiveFromSpawner(pair->second.get());
  ASSERT_TRUE(r) << r.error().detail();
  ASSERT_TRUE(*r);
  EXPECT_EQ(std::get<JobStarted>((*r)->message).times, started.times);
  EXPECT_EQ((*r)->fds.size(), 3u);
}

}  // namespace
}  // namespace pyrun::sandbox
