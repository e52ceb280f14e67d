// lua_pattern.cpp: a metered implementation of Lua 5.4's string.find, match, gmatch and gsub.
//
// Written from the Lua 5.4 reference manual (§6.4.1, patterns; §6.4, the functions) and checked
// against Lua 5.4.4 by tests/unit/lua_pattern_test.cpp, result for result and error for error.
// The matcher is a backtracking matcher like Lua's, because the results must be the same
// (which of several matches a pattern finds depends on the order alternatives are tried) and so
// must the errors (Lua's "pattern too complex" depends on how deep the backtracking nests). What
// it adds is a step counter: every attempt to match one pattern item at one subject position is
// a step, and so is every subject byte scanned by a plain search, a balance (%b) or a
// back-reference; the steps go to the meter every kPatternMeterInterval steps and when a call
// ends. A plain search uses glibc's memmem, which is linear in the subject (Two-Way algorithm).
#include "runtime/lua_pattern.h"

#include <cctype>
#include <cstddef>
#include <cstring>
#include <new>

namespace troupe::lua {
namespace {

constexpr char kEscape = '%';
constexpr int kMaxCaptures = 32;  // LUA_MAXCAPTURES: "too many captures" beyond
constexpr int kMaxDepth = 200;    // nested matcher calls before "pattern too complex", as in Lua
constexpr ptrdiff_t kOpenCapture = -1;      // a capture whose ')' has not been reached
constexpr ptrdiff_t kPositionCapture = -2;  // "()": captures the position, not text

int byte(char c) {
  return static_cast<unsigned char>(c);
}

// The meter of a pattern function: its first upvalue.
struct MeterBox {
  PatternMeter meter;
};

PatternMeter upvalue_meter(lua_State* L) {
  return static_cast<const MeterBox*>(lua_touserdata(L, lua_upvalueindex(1)))->meter;
}

// True when c is in the class named by `cl` (%a, %D, ...); any other `cl` stands for itself.
// The <ctype.h> functions are Lua's, so the classes follow the same locale.
bool in_class(int c, int cl) {
  bool in;
  switch (std::tolower(cl)) {
    case 'a':
      in = std::isalpha(c);
      break;
    case 'c':
      in = std::iscntrl(c);
      break;
    case 'd':
      in = std::isdigit(c);
      break;
    case 'g':
      in = std::isgraph(c);
      break;
    case 'l':
      in = std::islower(c);
      break;
    case 'p':
      in = std::ispunct(c);
      break;
    case 's':
      in = std::isspace(c);
      break;
    case 'u':
      in = std::isupper(c);
      break;
    case 'w':
      in = std::isalnum(c);
      break;
    case 'x':
      in = std::isxdigit(c);
      break;
    case 'z':  // deprecated since 5.2, still in 5.4's library
      in = c == 0;
      break;
    default:
      return cl == c;
  }
  return std::isupper(cl) ? !in : in;
}

// True when c is in the set `[...]` from `open` (its '[') to `close` (its ']').
bool in_set(int c, const char* open, const char* close) {
  const char* p = open;
  bool member = true;
  if (p[1] == '^') {
    member = false;
    ++p;
  }
  while (++p < close) {
    if (*p == kEscape) {
      ++p;
      if (in_class(c, byte(*p))) return member;
    } else if (p[1] == '-' && p + 2 < close) {
      if (byte(p[0]) <= c && c <= byte(p[2])) return member;
      p += 2;
    } else if (byte(*p) == c) {
      return member;
    }
  }
  return !member;
}

// True when the pattern has a character that makes it more than a plain string.
bool has_specials(const char* p, size_t len) {
  static constexpr char kSpecials[] = "^$*+?.([%-";
  for (size_t i = 0; i < len; ++i) {
    if (std::memchr(kSpecials, p[i], sizeof kSpecials - 1) != nullptr) return true;
  }
  return false;
}

// A 1-based start position (negative: from the end) as a 0-based offset, possibly past the end.
size_t start_offset(lua_Integer pos, size_t len) {
  if (pos > 0) return static_cast<size_t>(pos) - 1;
  if (pos == 0 || pos < -static_cast<lua_Integer>(len)) return 0;
  return len - static_cast<size_t>(-pos);
}

// The state of one match: the subject, the pattern, the captures so far and the step count.
// Subject and pattern are Lua strings, so a '\0' follows each (reading one past the end is safe
// and yields '\0', which the pattern syntax relies on the same way Lua's matcher does).
class Matcher {
 public:
  Matcher(lua_State* L, PatternMeter meter, const char* s, size_t ls, const char* p, size_t lp)
      : L_(L), meter_(meter), subject_(s), subject_end_(s + ls), pattern_end_(p + lp) {}

  void set_state(lua_State* L) { L_ = L; }
  const char* subject() const { return subject_; }
  const char* subject_end() const { return subject_end_; }

  // Where a match of pattern p starting at s ends, or nullptr; clears the captures first.
  const char* match_at(const char* s, const char* p) {
    level_ = 0;
    depth_ = kMaxDepth;
    return match(s, p);
  }

  // Adds steps done outside the matcher (a plain search); reports every kPatternMeterInterval.
  void count(uint64_t n) {
    steps_ += n;
    if (steps_ >= kPatternMeterInterval) report();
  }
  // Reports the remaining steps: call when a call ends, before it returns.
  void finish() {
    if (steps_ > 0) report();
  }

  // Pushes capture i; with no captures, capture 0 is the whole match s..e.
  void push_capture(int i, const char* s, const char* e) {
    if (i >= level_) {
      if (i != 0) luaL_error(L_, "invalid capture index %%%d", i + 1);
      lua_pushlstring(L_, s, static_cast<size_t>(e - s));
      return;
    }
    const Capture& c = captures_[i];
    if (c.len == kOpenCapture) luaL_error(L_, "unfinished capture");
    if (c.len == kPositionCapture)
      lua_pushinteger(L_, c.start - subject_ + 1);
    else
      lua_pushlstring(L_, c.start, static_cast<size_t>(c.len));
  }

  // Pushes every capture (the whole match s..e when there are none and s is given).
  int push_captures(const char* s, const char* e) {
    int n = (level_ == 0 && s != nullptr) ? 1 : level_;
    luaL_checkstack(L_, n, "too many captures");
    for (int i = 0; i < n; ++i)
      push_capture(i, s, e);
    return n;
  }

 private:
  struct Capture {
    const char* start;
    ptrdiff_t len;  // or kOpenCapture, kPositionCapture
  };

  void report() {
    uint64_t n = steps_;
    steps_ = 0;
    meter_(L_, n);
  }

  // One nested matcher call; the depth bounds the C stack.
  const char* match(const char* s, const char* p) {
    if (depth_-- == 0) luaL_error(L_, "pattern too complex");
    s = match_here(s, p);
    ++depth_;
    return s;
  }

  const char* match_here(const char* s, const char* p);
  const char* item_end(const char* p);
  bool single(const char* s, const char* p, const char* ep);
  const char* longest(const char* s, const char* p, const char* ep);
  const char* shortest(const char* s, const char* p, const char* ep);
  const char* open_capture(const char* s, const char* p, ptrdiff_t kind);
  const char* close_capture(const char* s, const char* p);
  const char* balance(const char* s, const char* p);
  const char* back_reference(const char* s, int digit);

  lua_State* L_;
  PatternMeter meter_;
  const char* subject_;
  const char* subject_end_;
  const char* pattern_end_;
  uint64_t steps_ = 0;
  int level_ = 0;
  int depth_ = kMaxDepth;
  Capture captures_[kMaxCaptures];
};

// The end of the single-character item at p: a character, '.', %x or a set [...].
const char* Matcher::item_end(const char* p) {
  switch (*p++) {
    case kEscape:
      if (p == pattern_end_) luaL_error(L_, "malformed pattern (ends with '%%')");
      return p + 1;
    case '[':
      if (*p == '^') ++p;
      do {  // the first character is a member even when it is ']'
        if (p == pattern_end_) luaL_error(L_, "malformed pattern (missing ']')");
        if (*p++ == kEscape && p < pattern_end_) ++p;  // %] is a member, not the end
      } while (*p != ']');
      return p + 1;
    default:
      return p;
  }
}

// Does the item p..ep match the character at s?
bool Matcher::single(const char* s, const char* p, const char* ep) {
  count(1);
  if (s >= subject_end_) return false;
  int c = byte(*s);
  switch (*p) {
    case '.':
      return true;
    case kEscape:
      return in_class(c, byte(p[1]));
    case '[':
      return in_set(c, p, ep - 1);
    default:
      return byte(*p) == c;
  }
}

// item* (and item+ after its first match): as many as possible, then fewer.
const char* Matcher::longest(const char* s, const char* p, const char* ep) {
  ptrdiff_t n = 0;
  while (single(s + n, p, ep))
    ++n;
  for (; n >= 0; --n) {
    if (const char* end = match(s + n, ep + 1)) return end;
  }
  return nullptr;
}

// item-: as few as possible, then more.
const char* Matcher::shortest(const char* s, const char* p, const char* ep) {
  for (;;) {
    if (const char* end = match(s, ep + 1)) return end;
    if (!single(s, p, ep)) return nullptr;
    ++s;
  }
}

const char* Matcher::open_capture(const char* s, const char* p, ptrdiff_t kind) {
  if (level_ >= kMaxCaptures) luaL_error(L_, "too many captures");
  captures_[level_] = {s, kind};
  ++level_;
  const char* end = match(s, p);
  if (end == nullptr) --level_;
  return end;
}

const char* Matcher::close_capture(const char* s, const char* p) {
  int i = level_ - 1;
  while (i >= 0 && captures_[i].len != kOpenCapture)
    --i;
  if (i < 0) luaL_error(L_, "invalid pattern capture");
  captures_[i].len = s - captures_[i].start;
  const char* end = match(s, p);
  if (end == nullptr) captures_[i].len = kOpenCapture;
  return end;
}

// %bxy at s: from an x to the y that balances it.
const char* Matcher::balance(const char* s, const char* p) {
  if (p >= pattern_end_ - 1) luaL_error(L_, "malformed pattern (missing arguments to '%%b')");
  if (s >= subject_end_ || *s != p[0]) return nullptr;
  const char open = p[0], close = p[1];
  const char* from = s;
  int depth = 1;
  while (++s < subject_end_) {
    if (*s == close) {
      if (--depth == 0) {
        count(static_cast<uint64_t>(s - from));
        return s + 1;
      }
    } else if (*s == open) {
      ++depth;
    }
  }
  count(static_cast<uint64_t>(s - from));
  return nullptr;
}

// %1-%9 at s: the same text as that capture (never matches a position capture).
const char* Matcher::back_reference(const char* s, int digit) {
  int i = digit - '1';
  if (i < 0 || i >= level_ || captures_[i].len == kOpenCapture)
    luaL_error(L_, "invalid capture index %%%d", i + 1);
  const Capture& c = captures_[i];
  if (c.len < 0 || subject_end_ - s < c.len) return nullptr;
  count(static_cast<uint64_t>(c.len));
  if (std::memcmp(c.start, s, static_cast<size_t>(c.len)) != 0) return nullptr;
  return s + c.len;
}

// Matches pattern p at s; the loop stands for the calls that would end this one.
const char* Matcher::match_here(const char* s, const char* p) {
  for (;;) {
    if (p == pattern_end_) return s;
    count(1);
    switch (*p) {
      case '(':
        if (p[1] == ')') return open_capture(s, p + 2, kPositionCapture);
        return open_capture(s, p + 1, kOpenCapture);
      case ')':
        return close_capture(s, p + 1);
      case '$':
        if (p + 1 == pattern_end_) return s == subject_end_ ? s : nullptr;
        break;  // elsewhere '$' is an ordinary character
      case kEscape:
        if (p[1] == 'b') {
          s = balance(s, p + 2);
          if (s == nullptr) return nullptr;
          p += 4;
          continue;
        }
        if (p[1] == 'f') {
          p += 2;
          if (*p != '[') luaL_error(L_, "missing '[' after '%%f' in pattern");
          const char* ep = item_end(p);
          int before = s == subject_ ? 0 : byte(s[-1]);
          int after = byte(*s);  // '\0' at the end of the subject
          if (in_set(before, p, ep - 1) || !in_set(after, p, ep - 1)) return nullptr;
          p = ep;
          continue;
        }
        if (p[1] >= '0' && p[1] <= '9') {
          s = back_reference(s, byte(p[1]));
          if (s == nullptr) return nullptr;
          p += 2;
          continue;
        }
        break;  // a class such as %a or an escaped character
      default:
        break;
    }
    // A single-character item with an optional suffix.
    const char* ep = item_end(p);
    if (!single(s, p, ep)) {
      if (*ep == '*' || *ep == '?' || *ep == '-') {  // may match zero times
        p = ep + 1;
        continue;
      }
      return nullptr;
    }
    switch (*ep) {
      case '?':
        if (const char* end = match(s + 1, ep + 1)) return end;
        p = ep + 1;
        continue;
      case '+':
        return longest(s + 1, p, ep);
      case '*':
        return longest(s, p, ep);
      case '-':
        return shortest(s, p, ep);
      default:
        ++s;
        p = ep;
        continue;
    }
  }
}

// string.find (find) and string.match (!find).
int find_or_match(lua_State* L, bool find) {
  size_t ls, lp;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
  if (init > ls) {  // starts after the end: nothing to find
    luaL_pushfail(L);
    return 1;
  }
  Matcher m(L, upvalue_meter(L), s, ls, p, lp);
  if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
    const void* hit = lp == 0 ? s + init : ::memmem(s + init, ls - init, p, lp);
    size_t at = hit ? static_cast<size_t>(static_cast<const char*>(hit) - s) : ls;
    m.count(at - init + (hit ? lp : 0));
    m.finish();
    if (hit) {
      lua_pushinteger(L, static_cast<lua_Integer>(at + 1));
      lua_pushinteger(L, static_cast<lua_Integer>(at + lp));
      return 2;
    }
    luaL_pushfail(L);
    return 1;
  }
  bool anchored = *p == '^';
  if (anchored) ++p;
  const char* from = s + init;
  for (;;) {
    if (const char* end = m.match_at(from, p)) {
      m.finish();
      if (!find) return m.push_captures(from, end);
      lua_pushinteger(L, from - s + 1);
      lua_pushinteger(L, end - s);
      return m.push_captures(nullptr, nullptr) + 2;
    }
    if (anchored || from >= m.subject_end()) break;
    ++from;
  }
  m.finish();
  luaL_pushfail(L);
  return 1;
}

int metered_find(lua_State* L) {
  return find_or_match(L, true);
}
int metered_match(lua_State* L) {
  return find_or_match(L, false);
}

// The iterator's state, a userdata upvalue; subject and pattern are kept alive as upvalues.
struct GmatchState {
  Matcher matcher;
  const char* pattern;
  size_t next;           // offset where the next search starts (may be past the end)
  const char* last_end;  // end of the last match: an empty match there is skipped
};

int gmatch_next(lua_State* L) {
  auto* g = static_cast<GmatchState*>(lua_touserdata(L, lua_upvalueindex(3)));
  Matcher& m = g->matcher;
  m.set_state(L);
  size_t length = static_cast<size_t>(m.subject_end() - m.subject());
  for (size_t at = g->next; at <= length; ++at) {
    const char* from = m.subject() + at;
    const char* end = m.match_at(from, g->pattern);
    if (end != nullptr && end != g->last_end) {
      g->next = static_cast<size_t>(end - m.subject());
      g->last_end = end;
      m.finish();
      return m.push_captures(from, end);
    }
  }
  g->next = length + 1;
  m.finish();
  return 0;
}

int metered_gmatch(lua_State* L) {
  size_t ls, lp;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
  PatternMeter meter = upvalue_meter(L);
  lua_settop(L, 2);  // subject and pattern become upvalues of the iterator
  void* block = lua_newuserdatauv(L, sizeof(GmatchState), 0);
  auto* g = new (block) GmatchState{Matcher(L, meter, s, ls, p, lp), p, 0, nullptr};
  g->next = init > ls ? ls + 1 : init;
  lua_pushcclosure(L, gmatch_next, 3);
  return 1;
}

// Appends the replacement string (argument 3) for the match s..e, with %0-%9 and %%.
void add_replacement_string(lua_State* L, Matcher& m, luaL_Buffer* b, const char* s,
                            const char* e) {
  size_t len;
  const char* r = lua_tolstring(L, 3, &len);
  const char* end = r + len;
  while (const char* esc = static_cast<const char*>(std::memchr(r, kEscape, end - r))) {
    luaL_addlstring(b, r, static_cast<size_t>(esc - r));
    char c = esc[1];  // '\0' when the '%' is last
    if (c == kEscape) {
      luaL_addchar(b, kEscape);
    } else if (c == '0') {
      luaL_addlstring(b, s, static_cast<size_t>(e - s));
    } else if (c >= '1' && c <= '9') {
      m.push_capture(c - '1', s, e);
      luaL_addvalue(b);  // a string, or a position converted to one
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", kEscape);
    }
    r = esc + 2;
  }
  luaL_addlstring(b, r, static_cast<size_t>(end - r));
}

// Appends the replacement for the match s..e; false when the match is kept as it was.
bool add_replacement(lua_State* L, Matcher& m, luaL_Buffer* b, const char* s, const char* e,
                     int type) {
  if (type == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    int n = m.push_captures(s, e);
    lua_call(L, n, 1);
  } else if (type == LUA_TTABLE) {
    m.push_capture(0, s, e);
    lua_gettable(L, 3);
  } else {
    add_replacement_string(L, m, b, s, e);
    return true;
  }
  if (!lua_toboolean(L, -1)) {  // nil or false: keep the original text
    lua_pop(L, 1);
    luaL_addlstring(b, s, static_cast<size_t>(e - s));
    return false;
  }
  if (!lua_isstring(L, -1)) luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  luaL_addvalue(b);
  return true;
}

int metered_gsub(lua_State* L) {
  size_t ls, lp;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  int type = lua_type(L, 3);
  lua_Integer max = luaL_optinteger(L, 4, static_cast<lua_Integer>(ls) + 1);
  luaL_argexpected(
      L, type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TFUNCTION || type == LUA_TTABLE,
      3, "string/function/table");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  bool anchored = *p == '^';
  if (anchored) {
    ++p;
    --lp;
  }
  Matcher m(L, upvalue_meter(L), s, ls, p, lp);
  const char* src = s;
  const char* last_end = nullptr;
  lua_Integer n = 0;
  bool changed = false;
  while (n < max) {
    const char* end = m.match_at(src, p);
    if (end != nullptr && end != last_end) {
      ++n;
      changed = add_replacement(L, m, &b, src, end, type) || changed;
      src = last_end = end;
    } else if (src < m.subject_end()) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (anchored) break;
  }
  m.finish();
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&b, src, static_cast<size_t>(m.subject_end() - src));
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, n);
  return 2;
}

}  // namespace

void install_metered_patterns(lua_State* L, int lib_index, PatternMeter meter) {
  lib_index = lua_absindex(L, lib_index);
  static const luaL_Reg kFunctions[] = {{"find", metered_find},
                                        {"match", metered_match},
                                        {"gmatch", metered_gmatch},
                                        {"gsub", metered_gsub}};
  auto* box = static_cast<MeterBox*>(lua_newuserdatauv(L, sizeof(MeterBox), 0));
  box->meter = meter;
  for (const luaL_Reg& f : kFunctions) {
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, f.func, 1);
    lua_setfield(L, lib_index, f.name);
  }
  lua_pop(L, 1);
}

}  // namespace troupe::lua
