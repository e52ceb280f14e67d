// lua_memory.h: the Lua allocator that charges every byte to the run that allocated it.
//
// All runs share one lua_State, so Lua's own accounting cannot tell them apart. Each block
// carries a small header naming its owner (a "slot"); allocations are charged to the slot
// of the run being resumed, frees are credited to the block's owner. A run over its limit
// gets a failed allocation, which Lua turns into a memory error inside that run only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace troupe::lua {

class MemoryAccounting {
 public:
  static constexpr uint32_t kHostSlot = 0;

  MemoryAccounting();

  // The lua_Alloc to give lua_newstate, with this object as ud.
  static void* alloc(void* ud, void* ptr, size_t osize, size_t nsize);

  // A slot for a new run with the given limit (0 = unlimited).
  uint32_t open_slot(uint64_t limit);
  // The run ended: no more limit; the slot is recycled once its last block is freed.
  void close_slot(uint32_t slot);
  // Allocations from now on are charged to slot (kHostSlot outside any run).
  void set_current(uint32_t slot) { current_ = slot; }
  uint32_t current() const { return current_; }

  // Bytes the run holds outside the Lua heap: its Lua allocations get that much less room.
  void set_reserved(uint32_t slot, uint64_t bytes);

  uint64_t used(uint32_t slot) const;
  uint64_t total() const { return total_; }
  // True once an allocation charged to slot was refused for its limit: the run is stopped
  // (its uncollected garbage counts too; a refused request is never granted later).
  bool exhausted(uint32_t slot) const;

 private:
  struct Slot {
    uint64_t used = 0;
    uint64_t limit = 0;
    uint64_t reserved = 0;
    enum State : uint8_t { live, draining, free } state = free;  // draining: run ended
    bool exhausted = false;
  };
  void* allocate(void* ptr, size_t osize, size_t nsize);
  void maybe_recycle(uint32_t slot);

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  uint32_t current_ = kHostSlot;
  uint64_t total_ = 0;
};

}  // namespace troupe::lua
