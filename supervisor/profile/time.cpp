// SPDX-License-Identifier: Apache-2.0
// Durations ("1h30m") and RFC 3339 date-times, as profiles write them.
#include <date/date.h>

#include <array>
#include <cctype>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "profile/profile.h"

namespace cordon::profile {
namespace {

struct DurationUnit {
    char suffix;
    int64_t seconds;
};

// Largest unit first: a duration names each unit at most once, in this order.
constexpr std::array<DurationUnit, 4> kDurationUnits{{
    {'d', 86400},
    {'h', 3600},
    {'m', 60},
    {'s', 1},
}};

[[noreturn]] void bad_duration(const std::string& text, const std::string& why) {
    throw std::invalid_argument(
        "\"" + text + "\" is not a duration: " + why +
        " (expected a number and unit, largest first: 90s, 30m, 1h30m, 1d)");
}

// Reads the digits at text[pos...] and advances pos past them.
int64_t read_number(const std::string& text, size_t& pos) {
    int64_t value = 0;
    size_t start = pos;
    for (; pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos])); ++pos) {
        if (value > std::numeric_limits<int32_t>::max()) bad_duration(text, "too large");
        value = value * 10 + (text[pos] - '0');
    }
    if (pos == start) bad_duration(text, "a number is missing");
    return value;
}

// RFC 3339 section 5.6 fixes the width of every field; date::parse is more
// lenient ("2027-1-31"), so the shape is checked first. 'd' is a digit.
bool has_rfc3339_shape(const std::string& text) {
    static const std::string kShape = "dddd-dd-ddTdd:dd:dd";
    if (text.size() < kShape.size()) return false;
    for (size_t i = 0; i < kShape.size(); ++i) {
        char c = text[i];
        bool ok = kShape[i] == 'd'   ? std::isdigit(static_cast<unsigned char>(c)) != 0
                  : kShape[i] == 'T' ? (c == 'T' || c == 't')
                                     : c == kShape[i];
        if (!ok) return false;
    }
    return true;
}

// "+hh:mm" at the end: date::parse takes hours and minutes past 23 and 59.
void check_offset(const std::string& normal, const std::string& text, const std::string& expected) {
    if (normal.size() < 6) return;
    std::string off = normal.substr(normal.size() - 6);
    bool shape = (off[0] == '+' || off[0] == '-') && std::isdigit((unsigned char)off[1]) &&
                 std::isdigit((unsigned char)off[2]) && off[3] == ':' &&
                 std::isdigit((unsigned char)off[4]) && std::isdigit((unsigned char)off[5]);
    if (shape && (std::stoi(off.substr(1, 2)) <= 23 && std::stoi(off.substr(4, 2)) <= 59)) return;
    throw std::invalid_argument("\"" + text + "\" has no valid UTC offset (Z or +hh:mm)" +
                                expected);
}

}  // namespace

std::chrono::seconds parse_duration(const std::string& text) {
    if (text.empty()) bad_duration(text, "it is empty");
    int64_t total = 0;
    size_t pos = 0;
    size_t next_unit = 0;  // index into kDurationUnits: units must come in order
    while (pos < text.size()) {
        int64_t value = read_number(text, pos);
        if (pos == text.size()) bad_duration(text, "a unit is missing after the number");
        size_t unit = next_unit;
        while (unit < kDurationUnits.size() && kDurationUnits[unit].suffix != text[pos]) ++unit;
        if (unit == kDurationUnits.size()) {
            bad_duration(text, std::string("unit '") + text[pos] + "' is unknown or out of order");
        }
        total += value * kDurationUnits[unit].seconds;
        next_unit = unit + 1;
        ++pos;
    }
    return std::chrono::seconds(total);
}

TimePoint parse_rfc3339(const std::string& text) {
    const std::string expected = " (expected RFC 3339 such as 2027-01-31T00:00:00Z)";
    if (!has_rfc3339_shape(text)) {
        throw std::invalid_argument("\"" + text + "\" is not an RFC 3339 date-time" + expected);
    }
    std::string normal = text;
    normal[10] = 'T';
    if (normal.back() == 'Z' || normal.back() == 'z')
        normal.replace(normal.size() - 1, 1, "+00:00");
    check_offset(normal, text, expected);
    // Times are kept to the nanosecond, whose 64-bit range ends in 2262.
    if (std::stoi(normal.substr(0, 4)) >= 2200)
        throw std::invalid_argument("\"" + text +
                                    "\" is too far ahead (an expiry must be before the year 2200)");

    // date::parse checks the calendar (no February 30) and the clock (no hour 25).
    std::istringstream in(normal);
    date::sys_time<std::chrono::nanoseconds> parsed;
    in >> date::parse("%Y-%m-%dT%H:%M:%S%Ez", parsed);
    if (in.fail() || in.peek() != std::char_traits<char>::eof()) {
        throw std::invalid_argument("\"" + text + "\" is not a valid RFC 3339 date-time" +
                                    expected);
    }
    return std::chrono::floor<std::chrono::seconds>(parsed);
}

std::string format_rfc3339(TimePoint t) {
    return date::format("%FT%TZ", t);
}

}  // namespace cordon::profile
