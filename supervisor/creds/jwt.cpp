// SPDX-License-Identifier: Apache-2.0
#include "creds/jwt.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

namespace cordon::creds {
namespace {

struct PkeyDeleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct MdCtxDeleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioDeleter {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct SigDeleter {
    void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};

constexpr int kLifetimeSeconds = 60;  // long enough for one request and its retries

// RFC 7515 appendix C: base64 with the URL alphabet and no padding.
std::string base64url(const unsigned char* data, size_t size) {
    static const char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t n = data[i] << 16;
        if (i + 1 < size) n |= data[i + 1] << 8;
        if (i + 2 < size) n |= data[i + 2];
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        if (i + 1 < size) out += kAlphabet[(n >> 6) & 63];
        if (i + 2 < size) out += kAlphabet[n & 63];
    }
    return out;
}

std::string base64url(const std::string& text) {
    return base64url(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

Pkey load_key(const Secret& pem) {
    std::unique_ptr<BIO, BioDeleter> bio(
        BIO_new_mem_buf(pem.reveal().data(), static_cast<int>(pem.reveal().size())));
    if (!bio) return nullptr;
    return Pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

// "RS256", "ES256", or empty for a key of another kind.
std::string alg_of(EVP_PKEY* key) {
    if (EVP_PKEY_is_a(key, "RSA")) return "RS256";
    char curve[32] = "";
    if (EVP_PKEY_is_a(key, "EC") &&
        EVP_PKEY_get_utf8_string_param(key, "group", curve, sizeof curve, nullptr) == 1 &&
        std::string(curve) == "prime256v1")
        return "ES256";
    return {};
}

// RFC 7518 section 3.4: ES256 is R and S, 32 bytes each, not OpenSSL's DER.
std::vector<unsigned char> ecdsa_raw(const std::vector<unsigned char>& der) {
    const unsigned char* p = der.data();
    std::unique_ptr<ECDSA_SIG, SigDeleter> sig(d2i_ECDSA_SIG(nullptr, &p, long(der.size())));
    if (!sig) return {};
    std::vector<unsigned char> raw(64);
    BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), raw.data(), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), raw.data() + 32, 32);
    return raw;
}

Result<std::vector<unsigned char>> sign(EVP_PKEY* key, const std::string& input, bool ec) {
    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
    size_t size = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &size,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
        return plain_error("cannot sign the client assertion (OpenSSL)");
    std::vector<unsigned char> sig(size);
    if (EVP_DigestSign(ctx.get(), sig.data(), &size,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
        return plain_error("cannot sign the client assertion (OpenSSL)");
    sig.resize(size);
    return ec ? ecdsa_raw(sig) : sig;
}

std::string random_id() {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) return {};
    return base64url(bytes, sizeof bytes);
}

}  // namespace

Result<std::string> signing_alg(const Secret& pem, const std::string& what) {
    Pkey key = load_key(pem);
    if (!key)
        return plain_error(what + " holds no PEM private key",
                           "give the client's private key, such as openssl genpkey writes");
    std::string alg = alg_of(key.get());
    if (alg.empty())
        return plain_error(what + " holds a key of type " +
                               std::string(EVP_PKEY_get0_type_name(key.get())) +
                               "; private_key_jwt signs with RSA (RS256) or EC P-256 (ES256)",
                           "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256");
    return alg;
}

Result<Secret> client_assertion(const Secret& pem, const std::string& client_id,
                                const std::string& audience, const std::string& kid) {
    Pkey key = load_key(pem);
    std::string alg = key ? alg_of(key.get()) : "";
    if (alg.empty()) return plain_error("the client's private key cannot sign");
    nlohmann::json header = {{"alg", alg}, {"typ", "JWT"}};
    if (!kid.empty()) header["kid"] = kid;
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    nlohmann::json claims = {{"iss", client_id}, {"sub", client_id},
                             {"aud", audience},  {"jti", random_id()},
                             {"iat", now},       {"exp", now + kLifetimeSeconds}};
    std::string input = base64url(header.dump()) + "." + base64url(claims.dump());
    auto sig = sign(key.get(), input, alg == "ES256");
    if (!sig) return sig.error();
    if (sig->empty()) return plain_error("cannot convert the ES256 signature");
    return Secret(input + "." + base64url(sig->data(), sig->size()));
}

}  // namespace cordon::creds
