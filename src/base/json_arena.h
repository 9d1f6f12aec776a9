// Storage for the JSON values of one request: a Boost.JSON monotonic arena whose first block is
// part of the object. A chat call's DOMs (the request, the upstream answer, the answer we send)
// were ~60 allocations and as many frees per request, one per string, object and array; in the
// arena they are bump-pointer moves, and their destructors return at once (the storage is
// trivially deallocating).
//
// The storage does not own the arena: every value made with it must be gone before the arena.
// Declare the arena before the members that hold such values, and copy a value that must outlive
// the request into default storage (`json::value(v, json::storage_ptr())`): a plain copy of a
// value keeps the source's storage.
#pragma once

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/storage_ptr.hpp>
#include <cstddef>

namespace beacon::base {

class JsonArena {
  public:
    JsonArena() = default;
    JsonArena(const JsonArena&) = delete;
    JsonArena& operator=(const JsonArena&) = delete;

    // Non-owning; values made with it skip their deallocation walk.
    boost::json::storage_ptr storage() { return boost::json::storage_ptr(&resource_); }

  private:
    // A 1 KiB chat request and its answer fit, with room to spare; a larger one takes further
    // blocks from the heap, freed with the arena.
    static constexpr size_t kInlineBytes = 8 * 1024;
    alignas(std::max_align_t) unsigned char inline_[kInlineBytes];
    boost::json::monotonic_resource resource_{inline_, sizeof inline_};
};

}  // namespace beacon::base
