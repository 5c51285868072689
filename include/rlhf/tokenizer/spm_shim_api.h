// The plain C interface of librlhf_spm_shim.so, the only code that links SentencePiece.
//
// Why a shim: Debian's libsentencepiece carries and exports protobuf 3.14, LibTorch loads protobuf
// 3.21; in one link namespace the process crashes before main(). The shim is loaded with
// dlmopen(LM_ID_NEWLM) into a namespace of its own (spm_loader.cpp), so only ints, sizes and char
// buffers may cross this boundary — no C++ objects, no exceptions. Memory allocated by the shim is
// released by the shim (rlhf_spm_free).
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct RlhfSpm RlhfSpm;  // an opaque loaded SentencePiece model

enum RlhfSpmInfo { RLHF_SPM_PIECES = 0, RLHF_SPM_UNK = 1, RLHF_SPM_BOS = 2, RLHF_SPM_EOS = 3, RLHF_SPM_PAD = 4 };

// Train a model from in-memory sentences with SentencePiece trainer flags given as key/value pairs.
// On success returns 0 and sets *model/*model_len to a shim-owned buffer (release with rlhf_spm_free).
// On failure returns -1 and writes a message into err.
int rlhf_spm_train(const char* const* keys, const char* const* values, int n_kwargs,
                   const char* const* sentences, const size_t* lengths, size_t n_sentences,
                   char** model, size_t* model_len, char* err, size_t err_cap);

void rlhf_spm_free(void* buffer);

// Load a serialized model proto; NULL and a message in err on failure.
RlhfSpm* rlhf_spm_load(const char* model, size_t model_len, char* err, size_t err_cap);
void rlhf_spm_destroy(RlhfSpm* spm);

int rlhf_spm_info(const RlhfSpm* spm, int what);

// Encode text into ids. Returns the number of ids (which may exceed cap: then call again with a
// larger buffer), or -1 with a message in err.
long rlhf_spm_encode(const RlhfSpm* spm, const char* text, size_t len, int* ids, size_t cap,
                     char* err, size_t err_cap);

// Decode ids into UTF-8 text. Returns the byte length (which may exceed cap: call again), or -1.
long rlhf_spm_decode(const RlhfSpm* spm, const int* ids, size_t n, char* out, size_t cap,
                     char* err, size_t err_cap);

// The piece string of one id. Returns its byte length (may exceed cap), or -1 for a bad id.
long rlhf_spm_piece(const RlhfSpm* spm, int id, char* out, size_t cap);

// Id of a piece, or -1 when the piece is not in the vocabulary (unk is not returned for it).
int rlhf_spm_piece_to_id(const RlhfSpm* spm, const char* piece, size_t len);

#ifdef __cplusplus
}
#endif
