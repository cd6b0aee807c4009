// SPDX-License-Identifier: Apache-2.0
// An oauth source's endpoints: as configured, or from its issuer's
// metadata. RFC 8414 section 3 puts the well-known segment between the
// host and the issuer's path; OpenID Connect Discovery 1.0 section 4
// appends it to the issuer. A server may serve either, so both are asked,
// in that order. Section 3.3: the metadata's issuer must be the one
// configured, or an attacker's metadata could name its own token endpoint.
#include <nlohmann/json.hpp>

#include "creds/http.h"
#include "creds/oauth.h"

namespace cordon::creds {
namespace {

using nlohmann::json;

// https://as.example/tenant -> https://as.example/.well-known/NAME/tenant.
std::string rfc8414_url(const std::string& issuer, const std::string& name) {
    size_t host = issuer.find("://") + 3;
    size_t path = issuer.find('/', host);
    std::string rest = path == std::string::npos ? "" : issuer.substr(path);
    if (rest == "/") rest.clear();
    return issuer.substr(0, path) + "/.well-known/" + name + rest;
}

std::string oidc_url(const std::string& issuer) {
    std::string base = issuer;
    if (!base.empty() && base.back() == '/') base.pop_back();
    return base + "/.well-known/openid-configuration";
}

std::string string_field(const json& doc, const char* key) {
    auto it = doc.find(key);
    return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool is_http_url(const std::string& url) {
    return url.rfind("https://", 0) == 0 || url.rfind("http://", 0) == 0;
}

// The metadata document of `issuer`, from the first well-known URL that has one.
Result<json> fetch_metadata(const profile::OAuthSource& src, std::string& from) {
    std::string tried;
    for (const auto& url : metadata_urls(src.issuer)) {
        auto reply = get({url, src.ca_bundle});
        if (!reply) return reply.error();
        if (reply->status == 200) {
            from = url;
            json doc = json::parse(reply->body, nullptr, false);
            if (!doc.is_object()) return plain_error(url + " answered with no JSON object");
            return doc;
        }
        tried +=
            (tried.empty() ? "" : ", ") + url + " (HTTP " + std::to_string(reply->status) + ")";
    }
    return plain_error("no authorization server metadata for issuer " + src.issuer + ": " + tried,
                       "check the issuer URL, or give tokenUrl instead");
}

Status take_endpoints(const json& doc, const std::string& from, const profile::OAuthSource& src,
                      OAuthClient& client) {
    std::string issuer = string_field(doc, "issuer");
    if (issuer != src.issuer)
        return plain_error("the metadata at " + from + " is for issuer \"" + issuer + "\", not \"" +
                               src.issuer + "\"",
                           "write the issuer exactly as the server names itself");
    client.token_url = string_field(doc, "token_endpoint");
    if (!is_http_url(client.token_url))
        return plain_error("the metadata at " + from + " names no http(s) token_endpoint");
    std::string revocation = string_field(doc, "revocation_endpoint");
    if (client.revocation_url.empty() && is_http_url(revocation))
        client.revocation_url = revocation;
    return ok_status();
}

}  // namespace

std::vector<std::string> metadata_urls(const std::string& issuer) {
    return {rfc8414_url(issuer, "oauth-authorization-server"), oidc_url(issuer)};
}

Result<OAuthClient> make_client(const profile::Credential& cred, const Secret& client_secret) {
    const auto& src = cred.source.oauth;
    OAuthClient client{&cred, &client_secret, nullptr, src.token_url, src.revocation_url};
    if (src.issuer.empty()) return client;
    std::string from;
    auto doc = fetch_metadata(src, from);
    Status st = doc ? take_endpoints(*doc, from, src, client) : Status(doc.error());
    if (!st)
        return plain_error("credentials." + cred.name + ": " + st.error().what, st.error().hint);
    return client;
}

}  // namespace cordon::creds
