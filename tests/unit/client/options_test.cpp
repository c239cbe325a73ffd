// The pyrun command line: options, targets, defaults.
#include "client/options.h"

#include <gtest/gtest.h>

namespace pyrun::client {
namespace {

Result<Command> parse(std::vector<std::string> args, Environment env = {std::nullopt, "/home/u"}) {
  return parseCommandLine(args, env);
}

TEST(ParseTarget, HostAlone) {
  auto t = parseTarget("example.org");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "example.org");
  EXPECT_FALSE(t->port);
}

TEST(ParseTarget, HostAndPort) {
  auto t = parseTarget("127.0.0.1:9000");
  ASSERT_TRUE(t);
  EXPECT_EQ((*t), (Target{"127.0.0.1", 9000}));
}

TEST(ParseTarget, BracketedIpv6WithAndWithoutPort) {
  EXPECT_EQ(*parseTarget("[::1]:443"), (Target{"::1", 443}));
  EXPECT_EQ(*parseTarget("[2001:db8::5]"), (Target{"2001:db8::5", std::nullopt}));
}

TEST(ParseTarget, BareIpv6LiteralHasNoPort) {
  EXPECT_EQ(*parseTarget("::1"), (Target{"::1", std::nullopt}));
  EXPECT_EQ(*parseTarget("fe80::1:2"), (Target{"fe80::1:2", std::nullopt}));
}

TEST(ParseTarget, RejectsBadPorts) {
  for (const char* bad : {"h:0", "h:65536", "h:", "h:12x", "h:-1", "[::1]:", "[::1]:99999"}) {
    auto t = parseTarget(bad);
    ASSERT_FALSE(t) << bad;
    EXPECT_NE(t.error().detail().find("port"), std::string::npos) << t.error().detail();
  }
}

TEST(ParseTarget, RejectsMalformedHosts) {
  for (const char* bad : {"", ":9091", "[::1", "[]:80", "[::1]x", "a/b", "[::1]]"}) {
    EXPECT_FALSE(parseTarget(bad)) << bad;
  }
}

TEST(FormatEndpoint, BracketsIpv6) {
  EXPECT_EQ(formatEndpoint("::1", 9091), "[::1]:9091");
  EXPECT_EQ(formatEndpoint("host", 1), "host:1");
}

TEST(ParseCommandLine, MinimalUsesDefaults) {
  auto c = parse({"srv", "fib.py"});
  ASSERT_TRUE(c) << c.error().detail();
  EXPECT_FALSE(c->help);
  const Options& o = c->options;
  EXPECT_EQ(o.host, "srv");
  EXPECT_EQ(o.port, kDefaultPort);
  EXPECT_EQ(o.script, "fib.py");
  EXPECT_TRUE(o.args.empty());
  EXPECT_EQ(o.cert, "/home/u/.config/pyrun/me.pem");
  EXPECT_EQ(o.timeout, kDefaultTimeout);
  EXPECT_FALSE(o.stats);
  EXPECT_FALSE(o.verbose);
}

TEST(ParseCommandLine, CertPrecedenceFlagThenEnvThenHome) {
  Environment env{"/env/me.pem", "/home/u"};
  EXPECT_EQ(parse({"h", "s.py"}, env)->options.cert, "/env/me.pem");
  EXPECT_EQ(parse({"--cert", "/flag.pem", "h", "s.py"}, env)->options.cert, "/flag.pem");
  EXPECT_EQ(parse({"--cert=/eq.pem", "h", "s.py"}, env)->options.cert, "/eq.pem");
}

TEST(ParseCommandLine, NoCertAndNoHomeIsAnError) {
  auto c = parse({"h", "s.py"}, Environment{std::nullopt, std::nullopt});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().detail().find("PYRUN_CERT"), std::string::npos);
}

TEST(ParseCommandLine, AllOptions) {
  auto c = parse({"--cert", "c.pem", "--ca", "ca.pem", "-p", "1234", "--pin",
                  "sha256//abc=", "--timeout", "7", "--stats", "-v", "host", "s.py", "a", "b"});
  ASSERT_TRUE(c) << c.error().detail();
  const Options& o = c->options;
  EXPECT_EQ(o.cert, "c.pem");
  EXPECT_EQ(o.ca, "ca.pem");
  EXPECT_EQ(o.port, 1234);
  EXPECT_EQ(o.pin, "sha256//abc=");
  EXPECT_EQ(o.timeout, std::chrono::seconds(7));
  EXPECT_TRUE(o.stats);
  EXPECT_TRUE(o.verbose);
  EXPECT_EQ(o.args, (std::vector<std::string>{"a", "b"}));
}

TEST(ParseCommandLine, TimingsIsAFlagOfItsOwn) {
  auto c = parse({"--timings", "-v", "host", "s.py"});
  ASSERT_TRUE(c) << c.error().detail();
  EXPECT_TRUE(c->options.timings);
  EXPECT_FALSE(c->options.stats);
  auto plain = parse({"host", "s.py", "--timings"});
  ASSERT_TRUE(plain) << plain.error().detail();
  EXPECT_FALSE(plain->options.timings);  // after SCRIPT: the program's
  EXPECT_FALSE(parse({"--timings=1", "host", "s.py"}));
}

TEST(ParseCommandLine, OptionsStopAtScript) {
  auto c = parse({"host", "-v", "s.py", "-v", "--stats", "--", "-p"});
  ASSERT_TRUE(c) << c.error().detail();
  EXPECT_TRUE(c->options.verbose);  // between HOST and SCRIPT: still pyrun's
  EXPECT_FALSE(c->options.stats);
  EXPECT_EQ(c->options.args, (std::vector<std::string>{"-v", "--stats", "--", "-p"}));
}

TEST(ParseCommandLine, DoubleDashEndsOptions) {
  auto c = parse({"--", "host", "-weird.py", "x"});
  ASSERT_TRUE(c) << c.error().detail();
  EXPECT_EQ(c->options.script, "-weird.py");
  EXPECT_EQ(c->options.args, (std::vector<std::string>{"x"}));
}

TEST(ParseCommandLine, PortFromTargetOrFlag) {
  EXPECT_EQ(parse({"h:77", "s.py"})->options.port, 77);
  EXPECT_EQ(parse({"-p77", "h", "s.py"})->options.port, 77);
  EXPECT_EQ(parse({"--port=77", "h:77", "s.py"})->options.port, 77);
  auto both = parse({"-p", "78", "h:77", "s.py"});
  ASSERT_FALSE(both);
  EXPECT_NE(both.error().detail().find("two different ports"), std::string::npos);
}

TEST(ParseCommandLine, Ipv6Target) {
  auto c = parse({"[::1]:9000", "s.py"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->options.host, "::1");
  EXPECT_EQ(c->options.port, 9000);
}

TEST(ParseCommandLine, Help) {
  EXPECT_TRUE(parse({"--help"})->help);
  EXPECT_TRUE(parse({"-h", "host"})->help);
  EXPECT_NE(usage().find("HOST[:PORT] SCRIPT"), std::string::npos);
}

TEST(ParseCommandLine, Errors) {
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  std::vector<Case> cases = {
      {{}, "missing HOST"},
      {{"host"}, "missing SCRIPT"},
      {{"--frobnicate", "h", "s.py"}, "unknown option --frobnicate"},
      {{"h", "s.py", "--cert"}, ""},  // after SCRIPT: an argument, not an error (checked below)
      {{"--cert"}, "--cert needs a value"},
      {{"-p", "0", "h", "s.py"}, "not a port number"},
      {{"-p", "x", "h", "s.py"}, "not a port number"},
      {{"--timeout", "0", "h", "s.py"}, "between 1 and 3600"},
      {{"--timeout", "1.5", "h", "s.py"}, "between 1 and 3600"},
      {{"--pin", "md5//x", "h", "s.py"}, "sha256//"},
      {{"--pin", "sha256//", "h", "s.py"}, "sha256//"},
      {{"--stats=1", "h", "s.py"}, "takes no value"},
      {{"h:0", "s.py"}, "port"},
      {{"[::1", "s.py"}, "'['"},
  };
  for (const auto& c : cases) {
    auto r = parse(c.args);
    if (c.needle.empty()) {
      EXPECT_TRUE(r);
      continue;
    }
    ASSERT_FALSE(r) << c.needle;
    EXPECT_NE(r.error().detail().find(c.needle), std::string::npos) << r.error().detail();
  }
}

}  // namespace
}  // namespace pyrun::client

namespace pyrun::client {
namespace {

TEST(ParseCommandLine, BindAddressTakesAnIpLiteral) {
  auto c = parse({"-b", "127.0.0.2", "host", "s.py"});
  ASSERT_TRUE(c) << c.error().detail();
  EXPECT_EQ(c->options.bind_address, "127.0.0.2");
  c = parse({"host", "-b", "::1", "s.py"});
  ASSERT_TRUE(c) << c.error().detail();
  EXPECT_EQ(c->options.bind_address, "::1");
  EXPECT_EQ(parse({"host", "s.py"})->options.bind_address, "");
  auto bad = parse({"-b", "eth0", "host", "s.py"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().detail(), "-b \"eth0\" is not an IPv4 or IPv6 address");
  EXPECT_FALSE(parse({"-b"}));
}

}  // namespace
}  // namespace pyrun::client
