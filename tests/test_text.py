"""Tokenizer, text_to_word_sequence and pad_sequences follow Keras (KERAS-SEMANTICS.md §1, §2)."""
import doctest
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl.data.text as text_module
from minidl.data.text import (FILTERS, Tokenizer, pad_sequences, text_to_word_sequence,
                              tokenizer_from_json)

CHINESE = ['我喜欢编程', '我讨厌编程', '我喜欢编程']


def fitted(texts, **kwargs):
    tokenizer = Tokenizer(**kwargs)
    tokenizer.fit_on_texts(texts)
    return tokenizer


def test_docstring_examples_run():
    assert doctest.testmod(text_module).failed == 0


# --- text_to_word_sequence ---------------------------------------------------------------

def test_text_to_word_sequence_lowercases_filters_and_splits():
    assert text_to_word_sequence('Hello, World!  How are\tyou?') == ['hello', 'world', 'how', 'are', 'you']


def test_text_to_word_sequence_keeps_apostrophes():
    assert text_to_word_sequence("Don't stop") == ["don't", 'stop']


def test_text_to_word_sequence_with_custom_split_and_no_lowercasing():
    assert text_to_word_sequence('A;B;;c', filters='', lower=False, split=';') == ['A', 'B', 'c']


def test_default_filters_are_ascii_punctuation_without_apostrophe_plus_tab_and_newline():
    assert "'" not in FILTERS and '\t' in FILTERS and '\n' in FILTERS and '，' not in FILTERS


# --- vocabulary ----------------------------------------------------------------------------

def test_word_index_orders_by_count_with_ties_in_first_occurrence_order():
    tokenizer = fitted(['b a c', 'c d a', 'e'])
    assert list(tokenizer.word_index.items()) == [('a', 1), ('c', 2), ('b', 3), ('d', 4), ('e', 5)]


def test_index_zero_is_never_assigned():
    tokenizer = fitted(['x y z'], oov_token='<oov>')
    assert 0 not in tokenizer.index_word and min(tokenizer.word_index.values()) == 1


def test_counts_docs_and_document_count():
    tokenizer = fitted(['the cat the', 'the dog'])
    assert tokenizer.word_counts == {'the': 3, 'cat': 1, 'dog': 1}
    assert tokenizer.word_docs == {'the': 2, 'cat': 1, 'dog': 1}
    assert tokenizer.index_docs == {1: 2, 2: 1, 3: 1}
    assert tokenizer.document_count == 2


def test_index_word_is_the_inverse_of_word_index():
    tokenizer = fitted(['a b b c c c'])
    assert tokenizer.index_word == {1: 'c', 2: 'b', 3: 'a'}


def test_fitting_twice_accumulates_counts():
    tokenizer = fitted(['a b'])
    tokenizer.fit_on_texts(['b'])
    assert tokenizer.word_counts == {'a': 1, 'b': 2} and tokenizer.word_index == {'b': 1, 'a': 2}


def test_oov_token_is_forced_to_index_one():
    tokenizer = fitted(['a a b'], oov_token='<oov>')
    assert tokenizer.word_index == {'<oov>': 1, 'a': 2, 'b': 3}


def test_unknown_words_are_dropped_without_oov_token():
    assert fitted(['a b']).texts_to_sequences(['a zebra b']) == [[1, 2]]


def test_unknown_words_map_to_the_oov_index():
    assert fitted(['a b'], oov_token='<oov>').texts_to_sequences(['a zebra b']) == [[2, 1, 3]]


def test_num_words_does_not_shrink_word_index():
    assert len(fitted(['a b c d'], num_words=2).word_index) == 4


def test_num_words_keeps_only_indices_below_it():
    tokenizer = fitted(['a a a b b c'], num_words=3)
    assert tokenizer.texts_to_sequences(['c b a']) == [[2, 1]]


def test_num_words_counts_the_oov_slot_and_replaces_dropped_words():
    tokenizer = fitted(['a a a b b c'], num_words=3, oov_token='<oov>')
    assert tokenizer.texts_to_sequences(['c b a']) == [[1, 1, 2]]


def test_char_level_ignores_filters_and_split():
    tokenizer = fitted(['Hi, a!'], char_level=True)
    assert tokenizer.texts_to_sequences(['hi, a!']) == [[1, 2, 3, 4, 5, 6]]
    assert set(tokenizer.word_index) == {'h', 'i', ',', ' ', 'a', '!'}


def test_a_list_text_is_taken_as_tokens():
    tokenizer = fitted([['New York', 'is', 'big']])
    assert list(tokenizer.word_index) == ['new york', 'is', 'big']


def test_analyzer_replaces_word_splitting():
    tokenizer = fitted(['a-b c'], analyzer=lambda text: text.split('-'))
    assert list(tokenizer.word_index) == ['a', 'b c']


def test_texts_to_sequences_generator_yields_the_same_sequences():
    tokenizer = fitted(['a b', 'b c'])
    assert list(tokenizer.texts_to_sequences_generator(['c a'])) == tokenizer.texts_to_sequences(['c a'])


def test_sequences_to_texts_inverts_texts_to_sequences():
    tokenizer = fitted(['the cat sat'])
    assert tokenizer.sequences_to_texts(tokenizer.texts_to_sequences(['sat the cat'])) == ['sat the cat']


def test_sequences_to_texts_writes_oov_for_unknown_and_dropped_indices():
    tokenizer = fitted(['a a b c'], num_words=3, oov_token='<oov>')
    assert tokenizer.sequences_to_texts([[2, 3, 4, 99]]) == ['a <oov> <oov> <oov>']


def test_fit_on_sequences_counts_documents_per_index():
    tokenizer = Tokenizer()
    tokenizer.fit_on_sequences([[1, 2, 2], [2, 3]])
    assert tokenizer.document_count == 2 and tokenizer.index_docs == {1: 1, 2: 2, 3: 1}


# --- matrices -------------------------------------------------------------------------------
# fitted on ['the cat sat', 'the cat the dog']: the=1, cat=2, sat=3, dog=4; docs: 2, 2, 1, 1.

@pytest.fixture
def pets():
    return fitted(['the cat sat', 'the cat the dog'])


def test_binary_matrix_marks_present_words(pets):
    assert pets.texts_to_matrix(['the cat the dog'], mode='binary').tolist() == [[0, 1, 1, 0, 1]]


def test_count_matrix_counts_occurrences(pets):
    assert pets.texts_to_matrix(['the cat the dog'], mode='count').tolist() == [[0, 2, 1, 0, 1]]


def test_freq_matrix_divides_by_sequence_length(pets):
    assert pets.texts_to_matrix(['the cat the dog'], mode='freq').tolist() == [[0, .5, .25, 0, .25]]


def test_tfidf_matrix_uses_keras_formula(pets):
    # (1 + ln c) * ln(1 + document_count / (1 + index_docs[j]))
    expected = [0, (1 + math.log(2)) * math.log(1 + 2 / 3), math.log(1 + 2 / 3), 0, math.log(2)]
    np.testing.assert_allclose(pets.texts_to_matrix(['the cat the dog'], mode='tfidf')[0], expected)


def test_matrix_width_is_num_words_and_larger_indices_are_skipped():
    tokenizer = fitted(['a a b c'], num_words=3)
    assert tokenizer.sequences_to_matrix([[1, 2, 3, 7]], mode='count').tolist() == [[0, 1, 1]]


def test_matrix_row_of_an_empty_sequence_is_zero(pets):
    assert pets.sequences_to_matrix([[]], mode='freq').tolist() == [[0, 0, 0, 0, 0]]


def test_matrix_of_unfitted_tokenizer_without_num_words_raises():
    with pytest.raises(ValueError, match='num_words'):
        Tokenizer().sequences_to_matrix([[1]])


def test_tfidf_matrix_before_fitting_raises():
    with pytest.raises(ValueError, match='tfidf'):
        Tokenizer(num_words=5).sequences_to_matrix([[1]], mode='tfidf')


def test_unknown_matrix_mode_raises(pets):
    with pytest.raises(ValueError, match='vectorization mode'):
        pets.texts_to_matrix(['the'], mode='onehot')


def test_negative_index_in_sequences_to_matrix_raises(pets):
    with pytest.raises(ValueError, match='negative'):
        pets.sequences_to_matrix([[1, -1]])


# --- JSON -----------------------------------------------------------------------------------

def test_to_json_writes_keras_format_with_dicts_as_json_strings():
    config = json.loads(fitted(['a b a'], oov_token='<oov>').to_json())
    assert config['class_name'] == 'Tokenizer'
    assert json.loads(config['config']['word_index']) == {'<oov>': 1, 'a': 2, 'b': 3}
    assert json.loads(config['config']['index_word']) == {'1': '<oov>', '2': 'a', '3': 'b'}
    assert 'cjk' not in config['config']  # Keras' Tokenizer(**config) would refuse it
    assert config['minidl'] == {'cjk': 'split'}


def test_json_round_trip_restores_the_tokenizer():
    original = fitted(['the cat sat', '我喜欢猫'], num_words=5, oov_token='<oov>')
    restored = tokenizer_from_json(original.to_json())
    for name in ('word_counts', 'word_docs', 'index_docs', 'word_index', 'index_word',
                 'document_count', 'num_words', 'oov_token', 'filters', 'cjk'):
        assert getattr(restored, name) == getattr(original, name), name
    texts = ['the dog sat', '我喜欢狗']
    assert restored.texts_to_sequences(texts) == original.texts_to_sequences(texts)
    np.testing.assert_array_equal(restored.texts_to_matrix(texts, 'tfidf'),
                                  original.texts_to_matrix(texts, 'tfidf'))


def test_keras_json_without_cjk_key_loads_in_keras_mode():
    config = json.loads(fitted(CHINESE, cjk='keras').to_json())
    del config['minidl']
    restored = tokenizer_from_json(json.dumps(config))
    assert restored.cjk == 'keras' and restored.texts_to_sequences(CHINESE) == [[1], [2], [1]]


# --- constructor ----------------------------------------------------------------------------

def test_unknown_keyword_argument_raises_type_error():
    with pytest.raises(TypeError, match='num_word'):
        Tokenizer(num_word=10)


def test_invalid_cjk_mode_raises_value_error():
    with pytest.raises(ValueError, match='cjk'):
        Tokenizer(cjk='jieba')


def test_legacy_nb_words_sets_num_words_with_a_warning():
    with pytest.warns(DeprecationWarning, match='num_words'):
        assert Tokenizer(nb_words=7).num_words == 7


# --- CJK --------------------------------------------------------------------------------------

def test_keras_mode_makes_a_whole_chinese_sentence_one_token():
    tokenizer = fitted(CHINESE, cjk='keras')
    assert tokenizer.word_index == {'我喜欢编程': 1, '我讨厌编程': 2}
    assert tokenizer.texts_to_sequences(CHINESE) == [[1], [2], [1]]
    assert tokenizer.texts_to_sequences(['我喜欢学习']) == [[]]


def test_keras_mode_char_level_splits_chinese_characters():
    tokenizer = fitted(CHINESE, cjk='keras', char_level=True)
    assert list(tokenizer.word_index.items())[:4] == [('我', 1), ('编', 2), ('程', 3), ('喜', 4)]


def test_default_mode_splits_chinese_into_characters():
    tokenizer = fitted(CHINESE)
    assert list(tokenizer.word_index.items())[:4] == [('我', 1), ('编', 2), ('程', 3), ('喜', 4)]
    assert tokenizer.texts_to_sequences(['我喜欢学习']) == [[1, 4, 5]]


def test_default_mode_splits_cjk_and_keeps_latin_words():
    assert fitted(['我喜欢 deep learning!'])._tokens('我喜欢 deep learning!') == \
        ['我', '喜', '欢', 'deep', 'learning']


def test_default_mode_drops_fullwidth_punctuation():
    tokenizer = fitted(['你好，世界！“真的”（是）；：、。？'])
    assert list(tokenizer.word_index) == ['你', '好', '世', '界', '真', '的', '是']


def test_keras_mode_keeps_fullwidth_punctuation():
    assert list(fitted(['你好，世界！'], cjk='keras').word_index) == ['你好，世界！']


def test_default_mode_splits_japanese_kana_and_korean_syllables():
    assert fitted(['ひらがなカタカナ'])._tokens('すし。ラーメン') == ['す', 'し', 'ラ', 'ー', 'メ', 'ン']
    assert fitted(['안녕'])._tokens('안녕 세상') == ['안', '녕', '세', '상']


def test_default_mode_splits_extension_a_and_compatibility_ideographs():
    assert fitted(['㐀'])._tokens('㐀㐁豈更') == ['㐀', '㐁', '豈', '更']


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x2000)))
def test_text_without_cjk_is_split_exactly_as_keras(text):
    split_mode, keras_mode = Tokenizer(), Tokenizer(cjk='keras')
    assert split_mode._tokens(text) == keras_mode._tokens(text) == text_to_word_sequence(text)


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize('bad, type_name', [(3, 'int'), (None, 'NoneType'), (b'abc', 'bytes')])
def test_fit_on_texts_rejects_a_non_string_text_naming_position_and_type(bad, type_name):
    with pytest.raises(TypeError, match=rf'texts\[2\] is {type_name}, expected str'):
        Tokenizer().fit_on_texts(['a', 'b', bad])


def test_fit_on_texts_with_a_bad_text_changes_nothing():
    tokenizer = Tokenizer()
    with pytest.raises(TypeError):
        tokenizer.fit_on_texts(['a', 1])
    assert tokenizer.document_count == 0 and tokenizer.word_counts == {}


def test_texts_to_sequences_rejects_a_non_string_text():
    with pytest.raises(TypeError, match=r'texts\[1\] is float'):
        fitted(['a']).texts_to_sequences(['a', 1.5])


def test_bytes_error_says_how_to_decode():
    with pytest.raises(TypeError, match='decode'):
        Tokenizer().fit_on_texts([b'abc'])


def test_a_bare_string_warns_and_makes_each_character_a_text():
    tokenizer = Tokenizer()
    with pytest.warns(UserWarning, match='single string'):
        tokenizer.fit_on_texts('abca')
    assert tokenizer.document_count == 4 and tokenizer.word_index == {'a': 1, 'b': 2, 'c': 3}


# --- pad_sequences -----------------------------------------------------------------------------

def test_pad_sequences_pads_and_truncates_at_the_front_by_default():
    result = pad_sequences([[1, 2, 3], [4]], maxlen=2)
    assert result.tolist() == [[2, 3], [0, 4]] and result.dtype == np.int32


def test_pad_sequences_post_padding_left_aligns():
    assert pad_sequences([[1, 2, 3], [4]], padding='post').tolist() == [[1, 2, 3], [4, 0, 0]]


def test_pad_sequences_post_truncating_keeps_the_start():
    assert pad_sequences([[1, 2, 3]], maxlen=2, truncating='post').tolist() == [[1, 2]]


def test_pad_sequences_maxlen_defaults_to_the_longest():
    assert pad_sequences([[1], [1, 2, 3], [1, 2]]).shape == (3, 3)


def test_pad_sequences_fills_an_empty_sequence_with_value():
    assert pad_sequences([[], [5]], value=-1).tolist() == [[-1], [5]]


def test_pad_sequences_of_only_empty_sequences_has_zero_columns():
    assert pad_sequences([[], []]).shape == (2, 0)


def test_pad_sequences_casts_floats_by_dtype():
    assert pad_sequences([[1.7, -2.6]]).tolist() == [[1, -2]]
    np.testing.assert_allclose(pad_sequences([[1.5]], maxlen=2, dtype='float32'), [[0, 1.5]])


def test_pad_sequences_keeps_the_shape_of_each_step():
    result = pad_sequences([[[1, 2], [3, 4]], [[5, 6]]])
    assert result.shape == (2, 2, 2) and result[1].tolist() == [[0, 0], [5, 6]]


def test_pad_sequences_pads_strings_with_object_dtype():
    result = pad_sequences([['a', 'b'], ['c']], dtype=object, value='<pad>')
    assert result.tolist() == [['a', 'b'], ['<pad>', 'c']]


def test_pad_sequences_accepts_a_numpy_array():
    assert pad_sequences(np.array([[1, 2]]), maxlen=3).tolist() == [[0, 1, 2]]


def test_pad_sequences_with_maxlen_zero_gives_zero_columns():
    assert pad_sequences([[1, 2]], maxlen=0).shape == (1, 0)


@pytest.mark.parametrize('sequences, message', [
    (5, 'must be iterable'),
    ([[1], 5], 'list of iterables'),
    ([[[1, 2]], [[1, 2, 3]]], 'different from expected shape'),
    ([], 'maxlen'),
])
def test_pad_sequences_rejects_bad_sequences(sequences, message):
    with pytest.raises(ValueError, match=message):
        pad_sequences(sequences)


def test_pad_sequences_rejects_a_string_value_for_a_numeric_dtype():
    with pytest.raises(ValueError, match='dtype=object'):
        pad_sequences([[1]], value='x')


@pytest.mark.parametrize('option', ['padding', 'truncating'])
def test_pad_sequences_rejects_an_unknown_side(option):
    with pytest.raises(ValueError, match='"mid" not understood'):
        pad_sequences([[1]], **{option: 'mid'})


def test_pad_sequences_rejects_a_negative_maxlen():
    with pytest.raises(ValueError, match='maxlen'):
        pad_sequences([[1]], maxlen=-1)


def test_pad_sequences_rejects_a_non_integer_maxlen():
    with pytest.raises(TypeError, match='maxlen'):
        pad_sequences([[1]], maxlen=2.5)


@given(st.lists(st.lists(st.integers(1, 99), max_size=6), min_size=1, max_size=5),
       st.integers(0, 8), st.sampled_from(['pre', 'post']), st.sampled_from(['pre', 'post']))
def test_pad_sequences_keeps_the_right_items_in_order(sequences, maxlen, padding, truncating):
    result = pad_sequences(sequences, maxlen=maxlen, padding=padding, truncating=truncating)
    assert result.shape == (len(sequences), maxlen)
    for row, s in zip(result.tolist(), sequences):
        kept = (s[-maxlen:] if truncating == 'pre' else s[:maxlen]) if maxlen else []
        pad = [0] * (maxlen - len(kept))
        assert row == (pad + kept if padding == 'pre' else kept + pad)


# --- agreement with keras-preprocessing, when it is installed ------------------------------------

words_st = st.lists(st.sampled_from(['the', 'The', 'cat', 'cat!', 'sat', "don't", 'a-b', '\t', 'x,y']),
                    max_size=8).map(' '.join)


@settings(max_examples=100, deadline=None)
@given(st.lists(words_st, min_size=1, max_size=6), st.lists(words_st, max_size=4),
       st.sampled_from([None, 1, 3, 5]), st.sampled_from([None, '<oov>']), st.booleans())
def test_tokenizer_matches_keras_preprocessing(texts, queries, num_words, oov_token, char_level):
    keras_text = pytest.importorskip('keras_preprocessing.text')
    settings_ = dict(num_words=num_words, oov_token=oov_token, char_level=char_level)
    mine, theirs = Tokenizer(cjk='keras', **settings_), keras_text.Tokenizer(**settings_)
    mine.fit_on_texts(texts)
    theirs.fit_on_texts(texts)
    assert mine.word_index == theirs.word_index
    assert mine.index_docs == dict(theirs.index_docs)
    assert mine.texts_to_sequences(queries) == theirs.texts_to_sequences(queries)
    sequences = theirs.texts_to_sequences(texts)
    assert mine.sequences_to_texts(sequences) == theirs.sequences_to_texts(sequences)
    for mode in ('binary', 'count', 'freq', 'tfidf'):
        if mine.word_index or num_words:  # otherwise both raise: no width for the matrix
            np.testing.assert_allclose(mine.texts_to_matrix(texts, mode),
                                       theirs.texts_to_matrix(texts, mode))


# ----------------------------------------------------------------------------- unrepresentable values
@pytest.mark.parametrize("value, dtype, shown", [
    (np.nan, "int32", "value=nan"), (np.inf, "int64", "value=inf"),
    (300, "uint8", "value=300"), (np.int64(300), "uint8", "value=300"), (-1, "uint8", "value=-1"),
    (1e40, "float32", r"value=1e\+40"),
])
def test_pad_sequences_refuses_a_padding_value_the_dtype_cannot_hold(value, dtype, shown):
    with pytest.raises(ValueError, match=rf"{shown} cannot be represented in dtype {dtype}"):
        pad_sequences([[1, 2], [3]], dtype=dtype, value=value)


@pytest.mark.parametrize("sequences, dtype, shown", [
    ([[1, 2], [3, 300]], "uint8", r"300 in sequences\[1\]"),
    ([np.array([1, 300], dtype=np.int64)], "uint8", r"300 in sequences\[0\]"),
    ([[1.0, np.nan]], "int32", r"nan in sequences\[0\]"),
    ([[1, 2 ** 40]], "int32", r"1099511627776 in sequences\[0\]"),
])
def test_pad_sequences_refuses_items_the_dtype_cannot_hold(sequences, dtype, shown):
    with pytest.raises(ValueError, match=rf"{shown} cannot be represented in dtype {dtype}"):
        pad_sequences(sequences, dtype=dtype)


def test_pad_sequences_still_truncates_floats_and_pads_with_nan_in_float_dtypes():
    np.testing.assert_array_equal(pad_sequences([[1.7, 2.2], [3.9]]), [[1, 2], [0, 3]])
    padded = pad_sequences([[1, 2], [3]], dtype="float32", value=np.nan)
    assert np.isnan(padded[1, 0]) and padded[1, 1] == 3
    assert pad_sequences([[255]], dtype="uint8").tolist() == [[255]]


def test_pad_sequences_documents_where_it_differs_from_keras():
    assert "Deliberate difference from Keras" in pad_sequences.__doc__
