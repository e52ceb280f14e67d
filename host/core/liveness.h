// liveness.h: telling a deferred callback whether the object that scheduled it still exists.
//
// A timer, a posted closure, a store commit or a plugin completion may run after the object
// that started it is gone. The object owns a Liveness and ends it in its destructor, before
// it frees what a callback touches; each callback captures a Watch and returns early once it
// is gone(). Loop-thread only: a Watch says nothing about an object destroyed on another
// thread meanwhile.
#pragma once

#include <memory>

namespace troupe {

class Liveness {
 public:
  class Watch {
   public:
    Watch() = default;  // watches nothing: gone() from the start
    bool gone() const { return cell_.expired(); }

   private:
    friend class Liveness;
    explicit Watch(std::weak_ptr<const bool> cell) : cell_(std::move(cell)) {}
    std::weak_ptr<const bool> cell_;
  };

  Watch watch() const { return Watch(cell_); }
  // Every Watch is gone() from now on.
  void end() { cell_.reset(); }

 private:
  std::shared_ptr<const bool> cell_ = std::make_shared<const bool>(true);
};

}  // namespace troupe
