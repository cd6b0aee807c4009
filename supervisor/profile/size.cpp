// SPDX-License-Identifier: Apache-2.0
// Sizes in bytes ("512K", "10M"), as profiles write them.
#include <array>
#include <cctype>
#include <limits>
#include <stdexcept>

#include "profile/profile.h"

namespace cordon::profile {
namespace {

struct SizeUnit {
    char suffix;
    unsigned shift;  // binary units: K is 2^10 bytes
};

constexpr std::array<SizeUnit, 4> kSizeUnits{{
    {'K', 10},
    {'M', 20},
    {'G', 30},
    {'T', 40},
}};

[[noreturn]] void bad_size(const std::string& text, const std::string& why) {
    throw std::invalid_argument("\"" + text + "\" is not a size: " + why +
                                " (expected bytes or a number and a unit K, M, G or T, "
                                "powers of 1024: 65536, 512K, 10M, 1G)");
}

}  // namespace

uint64_t parse_size(const std::string& text) {
    constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
    size_t pos = 0;
    uint64_t value = 0;
    for (; pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos])); ++pos) {
        uint64_t digit = text[pos] - '0';
        if (value > (kMax - digit) / 10) bad_size(text, "too large");
        value = value * 10 + digit;
    }
    if (pos == 0) bad_size(text, "a number is missing");
    if (pos == text.size()) return value;
    if (pos + 1 != text.size()) bad_size(text, "only one unit letter may follow the number");
    for (const SizeUnit& unit : kSizeUnits) {
        if (text[pos] != unit.suffix) continue;
        if (value > (kMax >> unit.shift)) bad_size(text, "too large");
        return value << unit.shift;
    }
    bad_size(text, std::string("unit '") + text[pos] + "' is unknown");
}

}  // namespace cordon::profile
