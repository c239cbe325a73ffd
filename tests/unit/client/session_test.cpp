// Parts of a run that need no server: the RUN request and certificate rejection reasons.
#include "client/session.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/ssl/error.hpp>

#include "support/temp_dir.h"

namespace pyrun::client {
namespace {

boost::system::error_code sslReason(int reason) {
  return {static_cast<int>(ERR_PACK(ERR_LIB_SSL, 0, reason)),
          boost::asio::error::get_ssl_category()};
}

TEST(CertificateRejection, NamesTheAlert) {
  EXPECT_EQ(certificateRejection(sslReason(SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED)), "revoked");
  EXPECT_EQ(certificateRejection(sslReason(SSL_R_TLSV1_ALERT_UNKNOWN_CA)),
            "not issued by the server's CA");
  EXPECT_NE(certificateRejection(sslReason(SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED))->find("expired"),
            std::string::npos);
}

TEST(CertificateRejection, OtherFailuresAreNotRejections) {
  EXPECT_FALSE(certificateRejection(sslReason(SSL_R_WRONG_VERSION_NUMBER)));
  EXPECT_FALSE(certificateRejection(
      boost::system::error_code(ECONNRESET, boost::system::system_category())));
}

TEST(BuildRunRequest, UsesBaseNameAndArguments) {
  test::TempDir dir("client");
  test::writeFile(dir / "fib.py", "print(1)\n");
  Options o;
  o.script = dir / "fib.py";
  o.args = {"30", "-x"};
  auto r = buildRunRequest(o);
  ASSERT_TRUE(r) << r.error().detail();
  EXPECT_EQ(r->script_name, "fib.py");
  EXPECT_EQ(r->script, "print(1)\n");
  EXPECT_EQ(r->args, o.args);
  EXPECT_EQ(r->limits, proto::Limits{});
}

TEST(BuildRunRequest, MissingScriptNamesTheFile) {
  Options o;
  o.script = "/nonexistent/dir/x.py";
  auto r = buildRunRequest(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("/nonexistent/dir/x.py"), std::string::npos)
      << r.error().detail();
}

TEST(BuildRunRequest, RefusesRequestAboveTheFrameLimit) {
  test::TempDir dir("client");
  test::writeFile(dir / "big.py", std::string(proto::kMaxFramePayload - 100, '#'));
  Options o;
  o.script = dir / "big.py";
  o.args = {std::string(200, 'a')};
  auto r = buildRunRequest(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("big.py"), std::string::npos) << r.error().detail();
  EXPECT_NE(r.error().detail().find("1048576"), std::string::npos) << r.error().detail();
}

}  // namespace
}  // namespace pyrun::client
