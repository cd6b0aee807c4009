// SPDX-License-Identifier: Apache-2.0
// The HTTP that credential sources speak to authorization servers: libcurl,
// TLS verified (against the system's CAs or a configured bundle), bounded
// timeouts, and a few retries with backoff when the server could not be
// reached or failed (5xx), never when it answered with a refusal.
#pragma once

#include <curl/curl.h>

#include <string>

#include "cordon/result.h"

namespace cordon::creds {

struct HttpReply {
    long status = 0;
    std::string body;  // wiped when the reply goes: it may hold a token
    HttpReply() = default;
    HttpReply(HttpReply&&) = default;
    HttpReply& operator=(HttpReply&&) = default;
    ~HttpReply();
};

// What one request is sent with: where, which CAs to trust, and how the
// client authenticates when it uses HTTP Basic (client_secret_basic).
struct HttpTarget {
    std::string url;
    std::string ca_bundle;  // empty: the system's CAs
    const std::string* user = nullptr;
    const std::string* password = nullptr;
};

// An application/x-www-form-urlencoded body, wiped when it goes.
class Form {
  public:
    Form() = default;
    Form(const Form&) = delete;
    Form& operator=(const Form&) = delete;
    ~Form();
    // Adds name=value, value percent-encoded; an empty value is left out.
    void add(const std::string& name, const std::string& value);
    const std::string& text() const { return text_; }

  private:
    std::string text_;
};

// POSTs `form`. An error means no HTTP answer came (after the retries); a
// refusal is a reply with its status.
Result<HttpReply> post_form(const HttpTarget& target, const Form& form);

// GETs a JSON document, such as an authorization server's metadata.
Result<HttpReply> get(const HttpTarget& target);

// Failures of the network, worth another try: a name that did not resolve,
// a connection refused, cut or timed out. Not TLS's, the URL's or libcurl's
// own, which the next attempt would meet again.
bool transient(CURLcode rc);

// "HTTP 401: invalid_client (client authentication failed)": the status and
// the body's OAuth error and error_description (RFC 6749 section 5.2).
std::string refusal(const HttpReply& reply);

}  // namespace cordon::creds
