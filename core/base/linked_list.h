// Intrusive doubly-linked list (Envoy linked_object.h, h2o linklist.h): objects owned
// elsewhere link themselves into their parent's list, so a worker can walk its live
// connections without owning them, and unlinking is O(1) with no allocation.
// Single-owner, not thread-safe.
#pragma once

#include <cstddef>

namespace meshbox {

class LinkedNode {
 public:
  LinkedNode() = default;
  LinkedNode(const LinkedNode&) = delete;
  LinkedNode& operator=(const LinkedNode&) = delete;
  ~LinkedNode() { unlink(); }

  bool linked() const { return prev_ != nullptr; }
  void unlink() {
    if (!prev_) return;
    prev_->next_ = next_;
    next_->prev_ = prev_;
    prev_ = next_ = nullptr;
  }

 private:
  template <typename T>
  friend class LinkedList;
  LinkedNode* prev_ = nullptr;
  LinkedNode* next_ = nullptr;
};

/// A list of T, where T derives from LinkedNode. The list does not own its elements.
template <typename T>
class LinkedList {
 public:
  LinkedList() { head_.prev_ = head_.next_ = &head_; }
  LinkedList(const LinkedList&) = delete;
  LinkedList& operator=(const LinkedList&) = delete;
  ~LinkedList() {
    while (!empty())
      head_.next_->unlink();
    head_.prev_ = head_.next_ = nullptr;
  }

  bool empty() const { return head_.next_ == &head_; }
  size_t size() const {
    size_t n = 0;
    for (const LinkedNode* p = head_.next_; p != &head_; p = p->next_)
      ++n;
    return n;
  }
  void push_back(T* item) {
    LinkedNode* n = item;
    n->unlink();
    n->prev_ = head_.prev_;
    n->next_ = &head_;
    head_.prev_->next_ = n;
    head_.prev_ = n;
  }
  T* front() { return empty() ? nullptr : static_cast<T*>(head_.next_); }
  T* back() { return empty() ? nullptr : static_cast<T*>(head_.prev_); }

  /// Calls fn(T*) for every element; fn may unlink (or destroy) the element it is given.
  template <typename Fn>
  void for_each(Fn fn) {
    for (LinkedNode* p = head_.next_; p != &head_;) {
      LinkedNode* next = p->next_;
      fn(static_cast<T*>(p));
      p = next;
    }
  }

 private:
  LinkedNode head_;
};

}  // namespace meshbox
