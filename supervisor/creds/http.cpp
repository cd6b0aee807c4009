// SPDX-License-Identifier: Apache-2.0
#include "creds/http.h"

#include <curl/curl.h>
#include <string.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "cordon/log.h"

namespace cordon::creds {
namespace {

struct CurlDeleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using Curl = std::unique_ptr<CURL, CurlDeleter>;

// Three tries in all, 0.5 s then 1.5 s apart: a server restarting or a
// connection lost in flight gets a second chance, a dead one costs 2 s.
constexpr std::chrono::milliseconds kBackoff[] = {std::chrono::milliseconds(500),
                                                  std::chrono::milliseconds(1500)};

size_t append_body(char* data, size_t size, size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
}

}  // namespace

bool transient(CURLcode rc) {
    switch (rc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
            return true;
        default:
            return false;
    }
}

namespace {

bool tls_failure(CURLcode rc) {
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR ||
           rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM;
}

Error transport_error(const HttpTarget& target, CURLcode rc, const char* detail) {
    std::string what = "cannot reach " + target.url + ": " + curl_easy_strerror(rc);
    if (*detail) what += std::string(" (") + detail + ")";
    if (tls_failure(rc))
        return plain_error("TLS with " + target.url + " failed, a certificate problem: " +
                               (*detail ? detail : curl_easy_strerror(rc)),
                           target.ca_bundle.empty()
                               ? "if the server's certificate is signed by a private CA, name "
                                 "its PEM file in the source's caBundle"
                               : "check that " + target.ca_bundle +
                                     " holds the CA that signed the server's certificate");
    return plain_error(what, "check that the authorization server runs and the URL is right");
}

// One request, no retry. `form` null: a GET.
Result<HttpReply> perform_once(const HttpTarget& target, const Form* form) {
    Curl curl(curl_easy_init());
    if (!curl) return plain_error("cannot start libcurl");
    CURL* c = curl.get();
    HttpReply reply;
    char detail[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, target.url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 15L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
    if (!target.ca_bundle.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, target.ca_bundle.c_str());
    if (form) curl_easy_setopt(c, CURLOPT_POSTFIELDS, form->text().c_str());
    if (target.user && target.password) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, target.user->c_str());
        curl_easy_setopt(c, CURLOPT_PASSWORD, target.password->c_str());
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        Error e = transport_error(target, rc, detail);
        e.err = transient(rc) ? EAGAIN : 0;
        return e;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
    return reply;
}

Result<HttpReply> perform(const HttpTarget& target, const Form* form) {
    static auto logger = layer_logger("creds");
    for (size_t attempt = 0;; ++attempt) {
        auto reply = perform_once(target, form);
        bool retry = reply ? reply->status >= 500 : reply.error().err == EAGAIN;
        if (!retry || attempt == std::size(kBackoff)) {
            if (!reply) return plain_error(reply.error().what, reply.error().hint);
            return reply;
        }
        logger->debug("{}: {}, trying again", target.url,
                      reply ? "HTTP " + std::to_string(reply->status) : reply.error().what);
        std::this_thread::sleep_for(kBackoff[attempt]);
    }
}

}  // namespace

HttpReply::~HttpReply() {
    ::explicit_bzero(body.data(), body.size());
}

Form::~Form() {
    ::explicit_bzero(text_.data(), text_.size());
}

void Form::add(const std::string& name, const std::string& value) {
    if (value.empty()) return;
    // libcurl ignores the handle here (7.82 and later).
    char* escaped = curl_easy_escape(nullptr, value.data(), static_cast<int>(value.size()));
    if (!text_.empty()) text_ += '&';
    text_ += name;
    text_ += '=';
    if (escaped) {
        text_ += escaped;
        ::explicit_bzero(escaped, ::strlen(escaped));
    }
    curl_free(escaped);
}

Result<HttpReply> post_form(const HttpTarget& target, const Form& form) {
    return perform(target, &form);
}

Result<HttpReply> get(const HttpTarget& target) {
    return perform(target, nullptr);
}

std::string refusal(const HttpReply& reply) {
    std::string what = "HTTP " + std::to_string(reply.status);
    auto body = nlohmann::json::parse(reply.body, nullptr, false);
    if (body.is_object() && body.contains("error") && body["error"].is_string()) {
        what += ": " + body["error"].get<std::string>();
        if (body.contains("error_description") && body["error_description"].is_string())
            what += " (" + body["error_description"].get<std::string>() + ")";
    }
    return what;
}

}  // namespace cordon::creds
