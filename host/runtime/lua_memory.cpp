// lua_memory.cpp: per-run memory accounting for the shared lua_State.
#include "runtime/lua_memory.h"

#include <cstdlib>
#include <cstring>

namespace troupe::lua {
namespace {

// 16 bytes keep every block as aligned as malloc's own (Lua needs 8).
struct alignas(16) Header {
  uint32_t slot;
};
constexpr size_t kHeader = sizeof(Header);
static_assert(kHeader == 16);

}  // namespace

MemoryAccounting::MemoryAccounting() {
  slots_.push_back(Slot{0, 0, 0, Slot::live, false});
}

void* MemoryAccounting::alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  return static_cast<MemoryAccounting*>(ud)->allocate(ptr, osize, nsize);
}

void* MemoryAccounting::allocate(void* ptr, size_t osize, size_t nsize) {
  if (nsize == 0) {
    if (ptr != nullptr) {
      auto* h = reinterpret_cast<Header*>(static_cast<char*>(ptr) - kHeader);
      uint32_t owner = h->slot;
      slots_[owner].used -= osize;
      total_ -= osize;
      std::free(h);
      if (slots_[owner].state == Slot::draining) maybe_recycle(owner);
    }
    return nullptr;
  }
  Header* old = ptr ? reinterpret_cast<Header*>(static_cast<char*>(ptr) - kHeader) : nullptr;
  size_t old_size = ptr ? osize : 0;  // for new blocks Lua passes the object type in osize
  uint32_t owner = old ? old->slot : current_;
  Slot& s = slots_[owner];
  if (nsize > old_size && s.limit != 0 && s.used - old_size + nsize + s.reserved > s.limit) {
    // Refusing makes Lua raise a memory error in the run; the runtime then stops the run
    // (pcall cannot swallow it). Not every allocation path retries after a collection
    // (lauxlib's buffers do not), so the first refusal decides.
    s.exhausted = true;
    return nullptr;
  }
  void* block = std::realloc(old, nsize + kHeader);
  if (block == nullptr) return nullptr;
  auto* h = static_cast<Header*>(block);
  h->slot = owner;
  s.used = s.used - old_size + nsize;
  total_ = total_ - old_size + nsize;
  return static_cast<char*>(block) + kHeader;
}

uint32_t MemoryAccounting::open_slot(uint64_t limit) {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  slots_[slot] = Slot{0, limit, 0, Slot::live, false};
  return slot;
}

void MemoryAccounting::close_slot(uint32_t slot) {
  if (slot == kHostSlot || slot >= slots_.size()) return;
  if (slots_[slot].state != Slot::live) return;
  slots_[slot].state = Slot::draining;
  slots_[slot].limit = 0;
  maybe_recycle(slot);
}

void MemoryAccounting::maybe_recycle(uint32_t slot) {
  if (slots_[slot].used == 0) {
    slots_[slot].state = Slot::free;
    free_.push_back(slot);
  }
}

void MemoryAccounting::set_reserved(uint32_t slot, uint64_t bytes) {
  if (slot != kHostSlot && slot < slots_.size()) slots_[slot].reserved = bytes;
}

uint64_t MemoryAccounting::used(uint32_t slot) const {
  return slot < slots_.size() ? slots_[slot].used : 0;
}

bool MemoryAccounting::exhausted(uint32_t slot) const {
  return slot < slots_.size() && slots_[slot].exhausted;
}

}  // namespace troupe::lua
