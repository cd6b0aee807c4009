// SPDX-License-Identifier: Apache-2.0
// A token's fingerprint in the audit log: SHA-256's first 12 hex digits,
// checked against the FIPS 180-2 test vectors; and where an issuer's
// metadata is looked for.
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

// RFC 8414 section 3.1 puts the well-known segment before the issuer's
// path; OpenID Connect Discovery 1.0 section 4.1 appends it.
TEST(IssuerMetadata, WellKnownUrlsOfAnIssuerWithAndWithoutAPath) {
    EXPECT_EQ(metadata_urls("https://as.example"),
              (std::vector<std::string>{"https://as.example/.well-known/oauth-authorization-server",
                                        "https://as.example/.well-known/openid-configuration"}));
    EXPECT_EQ(metadata_urls("https://as.example/"),
              (std::vector<std::string>{"https://as.example/.well-known/oauth-authorization-server",
                                        "https://as.example/.well-known/openid-configuration"}));
    EXPECT_EQ(metadata_urls("https://as.example:8443/realms/agents"),
              (std::vector<std::string>{
                  "https://as.example:8443/.well-known/oauth-authorization-server/realms/agents",
                  "https://as.example:8443/realms/agents/.well-known/openid-configuration"}));
}

}  // namespace
}  // namespace cordon::creds
