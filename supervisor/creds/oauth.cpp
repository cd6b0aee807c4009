// SPDX-License-Identifier: Apache-2.0
#include "creds/oauth.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <string.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "creds/secret_file.h"

namespace cordon::creds {
namespace {

using nlohmann::json;

struct CurlDeleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using Curl = std::unique_ptr<CURL, CurlDeleter>;

struct Reply {
    long status = 0;
    std::string body;
};

size_t append_body(char* data, size_t size, size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
}

// A form of name=value pairs, each value percent-encoded.
class Form {
  public:
    explicit Form(CURL* curl) : curl_(curl) {}
    Form(const Form&) = delete;
    Form& operator=(const Form&) = delete;
    ~Form() { ::explicit_bzero(text_.data(), text_.size()); }

    void add(const std::string& name, const std::string& value) {
        if (value.empty()) return;
        char* escaped = curl_easy_escape(curl_, value.data(), static_cast<int>(value.size()));
        if (!text_.empty()) text_ += '&';
        text_ += name;
        text_ += '=';
        if (escaped) text_ += escaped;
        if (escaped) ::explicit_bzero(escaped, ::strlen(escaped));
        curl_free(escaped);
    }
    const std::string& text() const { return text_; }

  private:
    CURL* curl_;
    std::string text_;
};

// POSTs the form, authenticating the client as the source says.
Result<Reply> post(const std::string& url, const profile::OAuthSource& src, const Secret& secret,
                   const std::function<void(Form&)>& fields) {
    Curl curl(curl_easy_init());
    if (!curl) return plain_error("cannot start libcurl");
    Form form(curl.get());
    fields(form);
    if (src.auth == "client_secret_post") {
        form.add("client_id", src.client_id);
        form.add("client_secret", secret.reveal());
    } else {
        curl_easy_setopt(curl.get(), CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(curl.get(), CURLOPT_USERNAME, src.client_id.c_str());
        curl_easy_setopt(curl.get(), CURLOPT_PASSWORD, secret.reveal().c_str());
    }
    Reply reply;
    curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, form.text().c_str());
    curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 15L);
    curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &reply.body);
    CURLcode rc = curl_easy_perform(curl.get());
    if (rc != CURLE_OK)
        return plain_error("cannot reach " + url + ": " + curl_easy_strerror(rc),
                           "check that the authorization server runs and the URL is right");
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &reply.status);
    return reply;
}

// "HTTP 401: invalid_client (client authentication failed)".
std::string refusal(const Reply& reply) {
    std::string what = "HTTP " + std::to_string(reply.status);
    json body = json::parse(reply.body, nullptr, false);
    if (body.is_object() && body.contains("error") && body["error"].is_string()) {
        what += ": " + body["error"].get<std::string>();
        if (body.contains("error_description") && body["error_description"].is_string())
            what += " (" + body["error_description"].get<std::string>() + ")";
    }
    return what;
}

Result<IssuedToken> parse_token(const profile::Credential& cred, Reply& reply) {
    const auto& url = cred.source.oauth.token_url;
    json body = json::parse(reply.body, nullptr, false);
    ::explicit_bzero(reply.body.data(), reply.body.size());
    if (!body.is_object() || !body.contains("access_token") || !body["access_token"].is_string())
        return plain_error("credentials." + cred.name + ": " + url +
                           " answered without an access_token");
    IssuedToken t;
    t.credential = cred.name;
    std::string& token = body["access_token"].get_ref<std::string&>();
    t.fingerprint = fingerprint(token);
    t.token = Secret(token);
    ::explicit_bzero(token.data(), token.size());
    if (body.contains("scope") && body["scope"].is_string()) t.scope = body["scope"];
    if (body.contains("expires_in") && body["expires_in"].is_number_integer())
        t.expires_in = std::chrono::seconds(body["expires_in"].get<long>());
    return t;
}

}  // namespace

Result<Secret> read_client_secret(const profile::Credential& cred) {
    return read_secret_file(cred.source.oauth.client_secret_file,
                            "credentials." + cred.name + ".source.oauth.clientSecretFile");
}

Result<IssuedToken> issue(const profile::Credential& cred, const Secret& client_secret) {
    const auto& src = cred.source.oauth;
    auto reply = post(src.token_url, src, client_secret, [&](Form& f) {
        f.add("grant_type", "client_credentials");
        f.add("scope", src.scope);
        f.add("resource", src.resource);
    });
    if (!reply)
        return plain_error("credentials." + cred.name + ": " + reply.error().what,
                           reply.error().hint);
    if (reply->status != 200)
        return plain_error(
            "credentials." + cred.name + ": the token endpoint " + src.token_url +
                " refused: " + refusal(*reply),
            "check the client id, its secret, and the scope and resource it may ask");
    auto token = parse_token(cred, *reply);
    if (token) token->client_secret = &client_secret;
    return token;
}

Result<std::vector<IssuedToken>> issue_all(const profile::Profile& profile,
                                           const std::map<std::string, Secret>& client_secrets) {
    std::vector<IssuedToken> out;
    for (const auto& [name, client_secret] : client_secrets) {
        auto token = issue(profile.credentials.at(name), client_secret);
        if (!token) {
            for (const auto& issued : out)
                (void)revoke(profile.credentials.at(issued.credential), issued);
            return token.error();
        }
        out.push_back(std::move(*token));
    }
    return out;
}

Status revoke(const profile::Credential& cred, const IssuedToken& token) {
    const auto& src = cred.source.oauth;
    if (src.revocation_url.empty()) return ok_status();
    auto reply = post(src.revocation_url, src, *token.client_secret, [&](Form& f) {
        f.add("token", token.token.reveal());
        f.add("token_type_hint", "access_token");
    });
    if (!reply) return reply.error();
    // RFC 7009 section 2.2: 200 whether or not the token was still valid.
    if (reply->status != 200)
        return plain_error("the revocation endpoint " + src.revocation_url +
                           " refused: " + refusal(*reply));
    return ok_status();
}

std::string fingerprint(const std::string& value) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(value.data(), value.size(), digest, &length, EVP_sha256(), nullptr) != 1)
        return "unknown";
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < 6 && i < length; ++i) {
        out += kHex[digest[i] >> 4];
        out += kHex[digest[i] & 0xf];
    }
    return out;
}

}  // namespace cordon::creds
