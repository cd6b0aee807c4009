// SPDX-License-Identifier: Apache-2.0
// A token's fingerprint in the audit log: SHA-256's first 12 hex digits,
// checked against the FIPS 180-2 test vectors.
#include <gtest/gtest.h>

#include "creds/oauth.h"

namespace cordon::creds {
namespace {

TEST(TokenFingerprint, IsTheStartOfSha256) {
    EXPECT_EQ(fingerprint("abc"), "ba7816bf8f01");
    EXPECT_EQ(fingerprint(""), "e3b0c44298fc");
    EXPECT_EQ(fingerprint("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d206");
}

}  // namespace
}  // namespace cordon::creds
