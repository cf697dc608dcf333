// OpenSSL must not tear itself down at exit while Paho's detached threads are still ending
// (campusctl died with SIGSEGV in libcrypto at exit; see keep_openssl_until_exit in mqtt_tls.hpp).
// The crash itself is a race; what makes it impossible is deterministic: OPENSSL_cleanup never
// runs at exit. OPENSSL_atexit handlers run exactly when it does, so one of them is the witness.
#include <cstdlib>

#include <gtest/gtest.h>
#include <mqtt/async_client.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/mqtt_tls.hpp"

namespace {

void cleanup_ran() { std::_Exit(3); }

TEST(OpenSslAtExit, IsNotCleanedUpWhileClientThreadsMayStillEnd) {
  // A fresh process (re-executed, not forked): in this one, OpenSSL may already be initialised.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        campus::keep_openssl_until_exit();  // what both mains do first
        OPENSSL_atexit(cleanup_ran);
        // What a TLS client then does: Paho initialises OpenSSL for its ssl:// client, and
        // OpenSSL is used (a random number) as the handshake would.
        mqtt::async_client client("ssl://127.0.0.1:1", "openssl-exit-test", mqtt::create_options(MQTTVERSION_5));
        unsigned char b[8];
        RAND_bytes(b, sizeof b);
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
