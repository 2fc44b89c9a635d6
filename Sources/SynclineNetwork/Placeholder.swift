public import Syncline
